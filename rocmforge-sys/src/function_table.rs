//! The macro that declares a table of runtime functions and its loader.

/// Declares a struct of function pointers (types from the bindgen output) with a
/// loader that fills it from a dynamic library, symbol by symbol.
///
/// `required` entries must all be present; `optional` ones become `Option`s
/// (functions that only newer runtimes export).
macro_rules! function_table {
    (
        $(#[$meta:meta])*
        pub struct $name:ident {
            required { $($(#[$rdoc:meta])* $req:ident: $req_ty:ty,)* }
            optional { $($(#[$odoc:meta])* $opt:ident: $opt_ty:ty,)* }
        }
    ) => {
        $(#[$meta])*
        #[allow(non_snake_case)]
        #[derive(Clone, Copy)]
        pub struct $name {
            $($(#[$rdoc])* pub $req: $req_ty,)*
            $($(#[$odoc])* pub $opt: Option<$opt_ty>,)*
        }

        impl $name {
            /// Resolves every function of the table in `library`.
            ///
            /// # Safety
            /// `library` must be a library whose exported functions of these names have
            /// exactly the C signatures of the bindgen types (a HIP runtime of a supported
            /// version), and it must stay loaded for as long as the table is used.
            pub unsafe fn load(
                library: &libloading::Library,
                path: &std::path::Path,
            ) -> Result<Self, $crate::LoadError> {
                Ok(Self {
                    $($req: {
                        // SAFETY: the caller guarantees the symbol has this signature.
                        let symbol = unsafe {
                            library.get::<$req_ty>(concat!(stringify!($req), "\0").as_bytes())
                        };
                        *symbol.map_err(|e| $crate::LoadError::MissingSymbol {
                            library: path.to_path_buf(),
                            symbol: stringify!($req),
                            reason: e.to_string(),
                        })?
                    },)*
                    $($opt: {
                        // SAFETY: the caller guarantees the symbol has this signature.
                        let symbol = unsafe {
                            library.get::<$opt_ty>(concat!(stringify!($opt), "\0").as_bytes())
                        };
                        symbol.ok().map(|s| *s)
                    },)*
                })
            }

            /// The names of the required functions, in table order.
            pub const REQUIRED: &'static [&'static str] = &[$(stringify!($req)),*];
            /// The names of the optional functions, in table order.
            pub const OPTIONAL: &'static [&'static str] = &[$(stringify!($opt)),*];
        }

        impl std::fmt::Debug for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.debug_struct(stringify!($name)).finish_non_exhaustive()
            }
        }
    };
}

pub(crate) use function_table;
