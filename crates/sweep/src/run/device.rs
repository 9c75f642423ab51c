//! The compute device a config asks for, and the backend name records carry.

use anyhow::Result;
use burn::tensor::Device;

use crate::config::DeviceChoice;

/// The autodiff device for a config's choice.
pub fn device(choice: DeviceChoice) -> Result<Device> {
    #[allow(deprecated)] // ndarray is deprecated upstream; kept selectable for comparison.
    let device = match choice {
        DeviceChoice::Cpu => Device::flex(),
        DeviceChoice::Ndarray => Device::ndarray(),
        #[cfg(feature = "wgpu")]
        DeviceChoice::Wgpu => Device::wgpu(burn::tensor::DeviceKind::DefaultDevice),
        #[cfg(not(feature = "wgpu"))]
        DeviceChoice::Wgpu => anyhow::bail!(
            "device `wgpu` needs a build with the GPU backend: cargo build --release --features wgpu \
             (see the README's GPU section)"
        ),
    };
    Ok(device.autodiff())
}

/// The name of a backend device, as records state it.
pub fn backend_name(device: &Device) -> String {
    let debug = format!("{device:?}").to_lowercase();
    ["flex", "ndarray", "wgpu", "cuda"]
        .into_iter()
        .find(|b| debug.contains(b))
        .unwrap_or("unknown")
        .to_string()
}
