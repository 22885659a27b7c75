//! The logging shim: `log` by default, `defmt` behind a feature, nothing when
//! both are off. Core code logs through the crate-internal macros
//! `error!`, `warn!`, `info!`, `debug!` and `trace!` defined here.
//!
//! Arguments must be primitives or `&str` (they then work with both `log`'s
//! `Display` and `defmt`'s `Format`); log an error as `err.reason()`, never a
//! password, a key or a token.

// rustfmt is not idempotent on macro-generating macros; keep this one as written.
#[rustfmt::skip]
macro_rules! shim {
    ($name:ident, $d:tt) => {
        #[allow(unused_macros)]
        macro_rules! $name {
            ($d($d t:tt)*) => {{
                #[cfg(feature = "log")]
                ::log::$name!($d($d t)*);
                #[cfg(feature = "defmt")]
                ::defmt::$name!($d($d t)*);
                #[cfg(not(any(feature = "log", feature = "defmt")))]
                {
                    let _ = ::core::format_args!($d($d t)*);
                }
            }};
        }
    };
}

shim!(error, $);
shim!(warn, $);
shim!(info, $);
shim!(debug, $);
shim!(trace, $);
