//! The kernel command line (`-append`): space-separated `key=value` options.
//!
//! Known keys: `loglevel=0..=3` (error, warn, info, debug) and
//! `selftest=NAME` (a named scenario the tests boot into). Unknown keys are
//! kept so they can be reported, not silently dropped.

/// Options read from the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Options<'a> {
    /// Most verbose log level sent: 0 error .. 3 debug.
    pub loglevel: u8,
    /// Self-test scenario to run instead of the normal workload.
    pub selftest: Option<&'a str>,
    /// First option that was not understood, for a warning.
    pub first_unknown: Option<&'a str>,
}

/// Default `loglevel`: info.
pub const DEFAULT_LOGLEVEL: u8 = 2;

impl<'a> Options<'a> {
    /// Parses `cmdline`; malformed values fall back to defaults and are
    /// reported through `first_unknown`.
    pub fn parse(cmdline: &'a str) -> Self {
        let mut opts = Options {
            loglevel: DEFAULT_LOGLEVEL,
            selftest: None,
            first_unknown: None,
        };
        for word in cmdline.split_ascii_whitespace() {
            let (key, value) = word.split_once('=').unwrap_or((word, ""));
            let understood = match key {
                "loglevel" => match value.parse::<u8>() {
                    Ok(level @ 0..=3) => {
                        opts.loglevel = level;
                        true
                    }
                    _ => false,
                },
                "selftest" if !value.is_empty() => {
                    opts.selftest = Some(value);
                    true
                }
                _ => false,
            };
            if !understood && opts.first_unknown.is_none() {
                opts.first_unknown = Some(word);
            }
        }
        opts
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_cmdline_gives_defaults() {
        let o = Options::parse("");
        assert_eq!(o.loglevel, DEFAULT_LOGLEVEL);
        assert_eq!(o.selftest, None);
        assert_eq!(o.first_unknown, None);
    }

    #[test]
    fn known_options_are_read() {
        let o = Options::parse("  loglevel=3   selftest=null-read ");
        assert_eq!(o.loglevel, 3);
        assert_eq!(o.selftest, Some("null-read"));
        assert_eq!(o.first_unknown, None);
    }

    #[test]
    fn bad_values_keep_defaults_and_are_reported() {
        let o = Options::parse("loglevel=9 quiet selftest=");
        assert_eq!(o.loglevel, DEFAULT_LOGLEVEL);
        assert_eq!(o.selftest, None);
        assert_eq!(o.first_unknown, Some("loglevel=9"));
    }
}
