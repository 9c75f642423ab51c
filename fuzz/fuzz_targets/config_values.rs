//! Fuzzes the values of the sweep config. Most inputs of the `config` target stop at a syntax
//! error; here the input picks a valid config (`experiments/quick.toml` or a seed under
//! `fuzz/seeds/config/`) and overwrites its numbers and lists of numbers, so every run reaches
//! the value checks, the throwaway models built to check adapters, and the grid expansion.

#![no_main]

use libfuzzer_sys::arbitrary::{Result, Unstructured};
use libfuzzer_sys::fuzz_target;
use loraplus_fuzz::parse_and_expand;
use toml::Value;

const BASES: [&str; 3] = [
    include_str!("../../experiments/quick.toml"),
    include_str!("../seeds/config/bert-tokens.toml"),
    include_str!("../seeds/config/images-axes.toml"),
];

/// Every number in `value`, and every list of numbers, to be overwritten.
fn numbers<'a>(value: &'a mut Value, out: &mut Vec<&'a mut Value>) {
    let is_number = |v: &Value| v.is_integer() || v.is_float();
    if is_number(value) || value.as_array().is_some_and(|items| items.iter().all(is_number)) {
        out.push(value);
        return;
    }
    match value {
        Value::Array(items) => items.iter_mut().for_each(|item| numbers(item, out)),
        Value::Table(table) => table.iter_mut().for_each(|(_, item)| numbers(item, out)),
        _ => {}
    }
}

/// A number: any integer, a small one, a power of ten, or any float (NaN and infinities too).
fn number(u: &mut Unstructured) -> Result<Value> {
    Ok(match u.int_in_range(0..=3)? {
        0 => Value::Integer(u.arbitrary()?),
        1 => Value::Integer(i64::from(u.arbitrary::<u8>()?)),
        2 => Value::Integer(10_i64.pow(u.int_in_range(0..=18)?)),
        _ => Value::Float(u.arbitrary()?),
    })
}

/// A number, or a list of up to 16 of them.
fn replacement(u: &mut Unstructured) -> Result<Value> {
    if u.ratio(2, 3)? {
        return number(u);
    }
    let len = u.int_in_range(0..=16)?;
    Ok(Value::Array((0..len).map(|_| number(u)).collect::<Result<_>>()?))
}

fuzz_target!(|data: &[u8]| {
    let mut u = Unstructured::new(data);
    let Ok(base) = u.choose_index(BASES.len()) else { return };
    let mut config = Value::Table(BASES[base].parse().expect("the base configs are TOML"));
    while !u.is_empty() {
        let mut leaves = Vec::new();
        numbers(&mut config, &mut leaves);
        let (Ok(index), Ok(value)) = (u.choose_index(leaves.len()), replacement(&mut u)) else {
            break;
        };
        *leaves[index] = value;
    }
    let text = toml::to_string(&config).expect("a TOML table serialises");
    // To turn a crash into a regression test: replay it with this set to see the config it made.
    if std::env::var_os("FUZZ_PRINT_CONFIG").is_some() {
        eprintln!("{text}");
    }
    parse_and_expand(&text);
});
