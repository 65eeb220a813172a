//! CPU reference implementations of every op (also the CPU backend of the model).
