//! The `options!` macro: every `ssrd up` option is declared once, and its
//! flag, TOML key, default, help text and merge all follow from that one
//! declaration (config.rs holds the list).
//!
//! For each `name: Type = default;` it generates
//! - a field of [`Config`](crate::config::Config), the resolved value;
//! - `--name-with-dashes`, an `Option<Type>` field of `UpArgs` (clap), whose
//!   help is the doc comment plus the default, filled in at run time;
//! - `name`, an `Option<Type>` field of the TOML file's struct (serde,
//!   unknown keys refused);
//! - the default, in `Config::default()`;
//! - the merge: default, then file, then flag;
//! - `Config::OPTION_NAMES` and `Config::show(name)`, so tests can prove
//!   every option reaches `Config` from both the flag and the file;
//! - with `in RANGE` after the default: `Config::check_ranges`, which
//!   refuses a value outside it (from the flag or the file alike) with a
//!   message naming the option and its range, and `Config::RANGES`.

use std::net::IpAddr;
use std::path::PathBuf;

/// How an option's value is shown in `--help` and compared in tests.
pub trait ShowValue {
    fn show(&self) -> String;
}

macro_rules! show_by_display {
    ($($t:ty),*) => {$(
        impl ShowValue for $t {
            fn show(&self) -> String {
                self.to_string()
            }
        }
    )*};
}
show_by_display!(
    u16,
    u32,
    u64,
    usize,
    bool,
    IpAddr,
    String,
    ssrd_worker::Isolation
);

impl ShowValue for PathBuf {
    fn show(&self) -> String {
        self.display().to_string()
    }
}

/// See the module doc. Each option is `/// doc`, optional `#[arg(...)]`
/// extras for clap, then `name: Type = default;`.
macro_rules! options {
    ($(
        $(#[doc = $doc:literal])*
        $(#[arg($($arg:tt)*)])?
        $name:ident : $ty:ty = $default:expr $(, in $range:expr)?;
    )*) => {
        /// Everything `ssrd up` runs with (see `ssrd up --help`).
        #[derive(Debug, Clone, PartialEq)]
        pub struct Config {
            $( $(#[doc = $doc])* pub $name: $ty, )*
        }

        impl Default for Config {
            fn default() -> Self {
                Config { $( $name: $default, )* }
            }
        }

        /// The `ssrd up` flags: every option, unset unless given.
        #[derive(clap::Args, Debug, Clone, Default)]
        pub struct UpArgs {
            /// TOML file with any of the options below (same names, with
            /// underscores); flags win over the file.
            #[arg(long)]
            pub config: Option<std::path::PathBuf>,
            $(
                $(#[doc = $doc])*
                #[arg(long $(, $($arg)*)?)]
                pub $name: Option<$ty>,
            )*
        }

        /// The TOML file: every option, unset unless written.
        #[derive(serde::Deserialize, Debug, Default)]
        #[serde(deny_unknown_fields)]
        pub struct ConfigFile {
            $( #[serde(default)] pub $name: Option<$ty>, )*
        }

        impl Config {
            /// Every option's name (the TOML key; the flag with dashes).
            pub const OPTION_NAMES: &'static [&'static str] = &[$(stringify!($name)),*];

            /// An option's value as shown in `--help`, by name.
            pub fn show(&self, name: &str) -> Option<String> {
                use $crate::options::ShowValue;
                match name {
                    $( stringify!($name) => Some(self.$name.show()), )*
                    _ => None,
                }
            }

            /// Every ranged option: (name, lowest, highest).
            #[allow(dead_code)] // read by tests, which check every range
            pub const RANGES: &'static [(&'static str, u64, u64)] = &[
                $( $( (stringify!($name), *$range.start() as u64, *$range.end() as u64), )? )*
            ];

            /// Refuses any option outside its range.
            pub fn check_ranges(&self) -> std::result::Result<(), String> {
                $( $(
                    let range = $range;
                    if !range.contains(&self.$name) {
                        return Err(format!(
                            "{} (--{}) must be {}..={}, not {}",
                            stringify!($name),
                            stringify!($name).replace('_', "-"),
                            range.start(),
                            range.end(),
                            self.$name,
                        ));
                    }
                )? )*
                Ok(())
            }

            /// Takes every option the file sets.
            pub fn apply_file(&mut self, file: ConfigFile) {
                $( if let Some(v) = file.$name { self.$name = v; } )*
            }

            /// Takes every option given as a flag.
            pub fn apply_args(&mut self, args: &UpArgs) {
                $( if let Some(v) = &args.$name { self.$name = v.clone(); } )*
            }
        }
    };
}

pub(crate) use options;
