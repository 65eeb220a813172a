//! ggml tensor types and their block layouts, with CPU (de)quantization.
