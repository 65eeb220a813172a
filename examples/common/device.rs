//! `--device auto|cpu|gpu` and `--verbose`: which device an example runs on, and the
//! one-line notice when `auto` falls back to the CPU.

use std::error::Error;

use rocmforge::model::backend::hip::HipBackend;
use rocmforge::sys::LoadError;
use rocmforge::Device;

/// Where to run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum DeviceChoice {
    /// The first GPU when one is usable, else the CPU (with a one-line notice on stderr)
    Auto,
    /// The CPU
    Cpu,
    /// The first GPU; an error (saying every library tried) when there is none
    Gpu,
}

/// The device options, flattened into an example's arguments.
#[derive(clap::Args, Debug, Clone)]
pub struct DeviceArgs {
    /// Where to run: auto = the first GPU when one is usable, else the CPU
    #[arg(long, value_enum, value_name = "DEVICE", default_value_t = DeviceChoice::Auto)]
    pub device: DeviceChoice,
    /// When --device auto finds no usable GPU, print the whole reason (every library
    /// tried) instead of one line
    #[arg(short, long)]
    pub verbose: bool,
}

/// A GPU backend on the first GPU as `args` say, or `None` to run on the CPU: with
/// `--device cpu`, or `--device auto` when no GPU is usable (after a notice on stderr).
/// The error (of `--device gpu`) is the message to print, in full.
pub fn open_gpu(args: &DeviceArgs) -> Result<Option<HipBackend>, String> {
    if args.device == DeviceChoice::Cpu {
        return Ok(None);
    }
    match first_gpu() {
        Ok(backend) => Ok(Some(backend)),
        Err(e) if args.device == DeviceChoice::Gpu => {
            Err(format!("--device gpu: {}", full_message(e.as_ref())))
        }
        Err(e) => {
            if args.verbose {
                eprintln!(
                    "note: no usable GPU; running on the CPU. Why:\n{}",
                    full_message(e.as_ref())
                );
            } else {
                let (summary, shortened) = summary(e.as_ref());
                let more = match shortened {
                    Shortened::Tried => " — --verbose lists what was tried",
                    Shortened::Cut => " — --verbose for the whole message",
                    Shortened::No => "",
                };
                eprintln!("note: no usable GPU ({summary}); running on the CPU{more}");
            }
            Ok(None)
        }
    }
}

/// The first GPU, with the model's kernels for it. Opening the device first (rather than
/// `HipBackend::new`, which flattens the reason into a string) keeps the typed error.
fn first_gpu() -> Result<HipBackend, Box<dyn Error>> {
    let device = Device::new(0)?;
    Ok(HipBackend::on_device(&device)?)
}

/// What [`summary`] left out.
enum Shortened {
    /// Nothing.
    No,
    /// The list of libraries tried.
    Tried,
    /// The rest of the message.
    Cut,
}

/// One line saying why there is no GPU.
fn summary(e: &(dyn Error + 'static)) -> (String, Shortened) {
    if let Some(LoadError::RuntimeNotFound { tried }) = find_load_error(e) {
        let paths = if tried.len() == 1 { "path" } else { "paths" };
        return (
            format!("no GPU runtime found; {} {paths} tried", tried.len()),
            Shortened::Tried,
        );
    }
    if let Some(rocmforge::Error::NoDevice { call }) = find::<rocmforge::Error>(e) {
        return (
            format!("the GPU runtime sees no device: {call} returned hipErrorNoDevice"),
            Shortened::Cut,
        );
    }
    let message = e.to_string();
    let first = message.lines().next().unwrap_or_default().trim_end();
    let first = first.strip_suffix(':').unwrap_or(first).to_string();
    let shortened = if first.len() < message.trim_end().len() {
        Shortened::Cut
    } else {
        Shortened::No
    };
    (first, shortened)
}

/// The error's message, then each cause (in its `source()` chain) that the message does
/// not already include.
pub fn full_message(e: &(dyn Error + 'static)) -> String {
    let mut message = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        let text = c.to_string();
        if !message.contains(&text) {
            message.push_str("\ncaused by: ");
            message.push_str(&text);
        }
        cause = c.source();
    }
    message
}

/// The first error of type `T` in `e`'s `source()` chain, `e` included.
fn find<'a, T: Error + 'static>(e: &'a (dyn Error + 'static)) -> Option<&'a T> {
    let mut current = Some(e);
    while let Some(c) = current {
        if let Some(found) = c.downcast_ref::<T>() {
            return Some(found);
        }
        current = c.source();
    }
    None
}

/// The runtime's load error in `e`'s `source()` chain. The HIP and kernel errors wrap it
/// transparently (their `source()` skips it), so those are looked into as well.
fn find_load_error<'a>(e: &'a (dyn Error + 'static)) -> Option<&'a LoadError> {
    let mut current = Some(e);
    while let Some(c) = current {
        if let Some(load) = c.downcast_ref::<LoadError>() {
            return Some(load);
        }
        let hip = c.downcast_ref::<rocmforge::Error>().or_else(|| match c
            .downcast_ref::<rocmforge::kernels::Error>()
        {
            Some(rocmforge::kernels::Error::Hip(hip)) => Some(hip),
            _ => None,
        });
        if let Some(rocmforge::Error::Load(load)) = hip {
            return Some(load);
        }
        current = c.source();
    }
    None
}
