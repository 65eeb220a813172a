//! The progress bar of loading a model (over the bytes of its tensors), drawn on stderr
//! when stderr is a terminal; indicatif draws nothing otherwise.

use std::cell::Cell;
use std::path::Path;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use rocmforge::model::model::LoadProgress;

/// A bar fed by the `LoadProgress` callback of `Generator::load_with` / `Model::load_with`:
/// `&mut |p| bar.update(p)`. It appears at the first update (when the size is known) and is
/// cleared when dropped (the load ended, well or not).
pub struct LoadBar {
    bar: ProgressBar,
    shown: Cell<bool>,
}

impl LoadBar {
    /// A bar labelled `loading <file name of what>`.
    pub fn new(what: &str) -> LoadBar {
        let bar = ProgressBar::hidden();
        bar.set_style(
            ProgressStyle::with_template("loading {prefix} [{wide_bar}] {bytes}/{total_bytes}")
                .expect("a valid progress template")
                .progress_chars("=> "),
        );
        let name = Path::new(what)
            .file_name()
            .map_or_else(|| what.to_string(), |n| n.to_string_lossy().into_owned());
        bar.set_prefix(name);
        LoadBar {
            bar,
            shown: Cell::new(false),
        }
    }

    /// Moves the bar to `p`.
    pub fn update(&self, p: LoadProgress) {
        if !self.shown.replace(true) {
            self.bar.set_length(p.bytes_total as u64);
            // Hidden by indicatif when stderr is not a terminal.
            self.bar.set_draw_target(ProgressDrawTarget::stderr());
        }
        self.bar.set_position(p.bytes_done as u64);
    }
}

impl Drop for LoadBar {
    fn drop(&mut self) {
        self.bar.finish_and_clear();
    }
}

/// Loads a generator (model and tokenizer) from `file` onto `backend`, with a [`LoadBar`]
/// labelled with `path` while it loads.
pub fn load_generator<B: rocmforge::model::backend::Backend>(
    path: &str,
    file: rocmforge::model::gguf::GgufFile,
    backend: B,
) -> rocmforge::model::Result<rocmforge::model::generate::Generator<B>> {
    let bar = LoadBar::new(path);
    rocmforge::model::generate::Generator::load_with(
        std::sync::Arc::new(file),
        backend,
        rocmforge::model::model::ModelOptions::default(),
        &mut |p| bar.update(p),
    )
}
