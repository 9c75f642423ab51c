//! Sweeps beyond one process: how far a directory has got and which shards to resubmit
//! ([`status`]), one sweep's results joined from several directories ([`merge`]), and the
//! sbatch scripts of a Slurm job array ([`slurm`]).

pub mod merge;
pub mod slurm;
pub mod status;
