//! `vncap serve --config FILE`: the settings file both service managers use
//! (Debian's `/etc/vncap/vncap.toml`, OpenWrt's generated one).
//!
//! A TOML file whose keys are the long option names of the subcommand, flat
//! (no tables): `control = "127.0.0.1:8888"`, `max-sessions = 256`,
//! `require-tls = true`, `allowed-origin = ["https://a", "https://b"]`. It is
//! generic over the option list: each key/value becomes `--key value`
//! arguments placed *before* the command line's, and argh parses them like
//! typed ones (a switch: `key = true` is `--key`, `false` leaves it out; an
//! array repeats a repeatable option). A key the command line also gives is
//! dropped, so the command line overrides the file. The list of keys, and
//! which are switches or repeatable, is read from argh's own `--help`
//! ([`Options`]), the same list the man-page check reads, so nothing here
//! names an option. Each entry is parsed by argh on its own first, so an
//! unknown key or a bad value names the key and the line.
//!
//! Not here: what any option means (cli.rs), the checks between options
//! (serve.rs). TOML syntax is `toml_parser` (the lexer/parser under the
//! `toml` crate, without serde).

use argh::FromArgs;
use std::path::{Path, PathBuf};
use toml_parser::decoder::{IntegerRadix, ScalarKind};
use toml_parser::parser::{Event, EventKind};
use toml_parser::{ParseError, Source, Span};

/// One long option of a subcommand, as argh's usage line shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Opt {
    /// The name without the leading `--`.
    pub name: String,
    /// Takes a value (`--name <x>`); else a switch.
    pub takes_value: bool,
    /// May be given more than once (`<x...>`).
    pub repeats: bool,
}

/// The long options of one subcommand, read from argh's generated help.
#[derive(Debug, Clone)]
pub struct Options {
    /// In the order `--help` lists them; without `--help` itself.
    pub list: Vec<Opt>,
}

/// argh's help text for `vncap <cmd> --help`.
pub fn help_text<T: FromArgs>(cmd: &str) -> String {
    match T::from_args(&["vncap", cmd], &["--help"]) {
        Err(e) => e.output,
        Ok(_) => String::new(),
    }
}

impl Options {
    /// The options of subcommand `cmd` (type `T`).
    pub fn of<T: FromArgs>(cmd: &str) -> Options {
        Options::from_help(&help_text::<T>(cmd))
    }

    /// Parses argh's usage line (`[--name <x>]`, `[--switch]`, `<x...>`).
    pub fn from_help(help: &str) -> Options {
        let usage = help.lines().next().unwrap_or("");
        let words: Vec<&str> = usage.split_whitespace().collect();
        let mut list = Vec::new();
        for (i, w) in words.iter().enumerate() {
            let w = w.trim_start_matches('[').trim_end_matches(']');
            let Some(name) = w.strip_prefix("--") else {
                continue;
            };
            if name == "help" {
                continue;
            }
            let value = words.get(i + 1).filter(|v| v.starts_with('<'));
            list.push(Opt {
                name: name.to_string(),
                takes_value: value.is_some(),
                repeats: value.is_some_and(|v| v.contains("...>")),
            });
        }
        Options { list }
    }

    /// The option called `name`.
    pub fn get(&self, name: &str) -> Option<&Opt> {
        self.list.iter().find(|o| o.name == name)
    }

    /// The long options a command line gives (`--name`, up to a `--`).
    pub fn given<'a>(&self, args: &'a [String]) -> Vec<&'a str> {
        args.iter()
            .take_while(|a| *a != "--")
            .filter_map(|a| a.strip_prefix("--"))
            .filter(|n| self.get(n).is_some())
            .collect()
    }
}

/// Where each option from a settings file was set, to name the line in a
/// startup error about it.
#[derive(Debug, Default, Clone)]
pub struct Origins {
    path: PathBuf,
    lines: Vec<(String, usize)>,
}

impl Origins {
    /// Prefixes `FILE:LINE: ` to an error that starts with `--name` of an
    /// option the file set (the command line did not).
    pub fn annotate(&self, msg: String) -> String {
        let name = msg
            .strip_prefix("--")
            .and_then(|m| m.split([' ', ':']).next())
            .unwrap_or("");
        match self.lines.iter().find(|(k, _)| k == name) {
            Some((_, line)) => format!("{}:{line}: {msg}", self.path.display()),
            None => msg,
        }
    }
}

/// A settings-file value: what argh gets as the option's argument.
#[derive(Debug, Clone, PartialEq)]
enum Value {
    Bool(bool),
    /// A string, an integer (in decimal) or a float, as text.
    Text(String),
    Array(Vec<String>),
}

/// One `key = value` line.
#[derive(Debug, Clone, PartialEq)]
struct Entry {
    key: String,
    line: usize,
    value: Value,
}

/// The command line with the settings file of `--config FILE` in front:
/// `args` are the subcommand's own arguments (after `cmd`). Without
/// `--config` they come back as they are.
pub fn expand<T: FromArgs>(cmd: &str, args: Vec<String>) -> Result<(Vec<String>, Origins), String> {
    let Some(i) = args
        .iter()
        .take_while(|a| *a != "--")
        .position(|a| a == "--config")
    else {
        return Ok((args, Origins::default()));
    };
    let path = PathBuf::from(args.get(i + 1).ok_or("--config needs a FILE")?);
    let text =
        std::fs::read_to_string(&path).map_err(|e| format!("--config {}: {e}", path.display()))?;
    let options = Options::of::<T>(cmd);
    let (front, origins) = to_args::<T>(cmd, &options, &path, &text, &options.given(&args))?;
    Ok((front.into_iter().chain(args).collect(), origins))
}

/// The arguments `text` stands for, skipping the options in `given`; every
/// error is `FILE:LINE: ...`.
fn to_args<T: FromArgs>(
    cmd: &str,
    options: &Options,
    path: &Path,
    text: &str,
    given: &[&str],
) -> Result<(Vec<String>, Origins), String> {
    let at = |line: usize, msg: String| format!("{}:{line}: {msg}", path.display());
    let entries = parse(text).map_err(|(line, msg)| at(line, msg))?;
    let mut out = Vec::new();
    let mut origins = Origins {
        path: path.to_path_buf(),
        lines: Vec::new(),
    };
    for (n, e) in entries.iter().enumerate() {
        if let Some(first) = entries[..n].iter().find(|f| f.key == e.key) {
            let msg = format!("{}: set twice (first on line {})", e.key, first.line);
            return Err(at(e.line, msg));
        }
        let opt = options
            .get(&e.key)
            .filter(|o| o.name != "config")
            .ok_or_else(|| at(e.line, format!("{}: not an option of vncap {cmd}", e.key)))?;
        let flag = format!("--{}", e.key);
        let args: Vec<String> = match (&e.value, opt.takes_value) {
            (Value::Bool(true), false) => vec![flag],
            (Value::Bool(false), false) => vec![],
            (_, false) => return Err(at(e.line, format!("{}: must be true or false", e.key))),
            (Value::Bool(_), true) => {
                return Err(at(
                    e.line,
                    format!("{}: takes a value, not true/false", e.key),
                ))
            }
            (Value::Text(v), true) => vec![flag, v.clone()],
            (Value::Array(vs), true) if opt.repeats => {
                vs.iter().flat_map(|v| [flag.clone(), v.clone()]).collect()
            }
            (Value::Array(_), true) => {
                return Err(at(
                    e.line,
                    format!("{}: takes one value, not a list", e.key),
                ))
            }
        };
        // argh checks the value on its own: the error then names this line.
        let strs: Vec<&str> = args.iter().map(String::as_str).collect();
        if let Err(err) = T::from_args(&["vncap", cmd], &strs) {
            let msg = tidy_error(&err.output);
            let msg = if msg.starts_with("--") {
                msg
            } else {
                format!("{}: {msg}", e.key)
            };
            return Err(at(e.line, msg));
        }
        if !given.contains(&e.key.as_str()) {
            origins.lines.push((e.key.clone(), e.line));
            out.extend(args);
        }
    }
    Ok((out, origins))
}

/// argh's "Error parsing option '--x' with value 'v': why" as `--x v: why`,
/// the form of every other error about an option.
pub fn tidy_error(output: &str) -> String {
    let output = output.trim();
    let parsed = output
        .strip_prefix("Error parsing option '")
        .and_then(|r| r.split_once("' with value '"))
        .and_then(|(opt, r)| r.split_once("': ").map(|(v, why)| (opt, v, why)));
    match parsed {
        Some((opt, value, why)) => format!("{opt} {value}: {why}"),
        None => output.to_string(),
    }
}

/// 1-based line of byte `offset` in `text`.
fn line_of(text: &str, offset: usize) -> usize {
    1 + text.as_bytes()[..offset.min(text.len())]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
}

/// The flat `key = value` entries of a TOML document, or `(line, error)`.
fn parse(text: &str) -> Result<Vec<Entry>, (usize, String)> {
    let source = Source::new(text);
    let tokens = source.lex().into_vec();
    let mut events: Vec<Event> = Vec::new();
    let mut errors: Vec<ParseError> = Vec::new();
    toml_parser::parser::parse_document(&tokens, &mut events, &mut |e| errors.push(e));
    let err_line = |e: &ParseError| {
        let span = e
            .unexpected()
            .or(e.context())
            .unwrap_or(Span::new_unchecked(0, 0));
        line_of(text, span.start())
    };
    if let Some(e) = errors.first() {
        return Err((err_line(e), format!("not TOML: {}", e.description())));
    }
    let decode = |ev: &Event| -> Result<(String, ScalarKind), (usize, String)> {
        let line = line_of(text, ev.span().start());
        let raw = source
            .get(ev)
            .ok_or((line, "not TOML: bad span".to_string()))?;
        let mut out = String::new();
        let mut errs: Vec<ParseError> = Vec::new();
        let kind = raw.decode_scalar(&mut out, &mut |e| errs.push(e));
        match errs.first() {
            Some(e) => Err((line, format!("not TOML: {}", e.description()))),
            None => Ok((out, kind)),
        }
    };
    let mut entries = Vec::new();
    let mut key: Option<(String, usize)> = None;
    let mut array: Option<Vec<String>> = None;
    for ev in &events {
        let line = line_of(text, ev.span().start());
        match ev.kind() {
            EventKind::Whitespace
            | EventKind::Comment
            | EventKind::Newline
            | EventKind::KeyValSep
            | EventKind::ValueSep => {}
            EventKind::SimpleKey if key.is_none() => {
                let raw = source.get(ev).ok_or((line, "not TOML".to_string()))?;
                let mut k = String::new();
                raw.decode_key(&mut k, &mut |_| {});
                key = Some((k, line));
            }
            EventKind::SimpleKey | EventKind::KeySep => {
                return Err((
                    line,
                    "dotted keys are not used: write the option name".into(),
                ))
            }
            EventKind::StdTableOpen | EventKind::ArrayTableOpen => {
                return Err((
                    line,
                    "[tables] are not used: every key is an option name at the top level".into(),
                ))
            }
            EventKind::InlineTableOpen => {
                return Err((
                    line,
                    "inline tables are not used: give a string, number, boolean or list".into(),
                ))
            }
            EventKind::ArrayOpen if array.is_none() => array = Some(Vec::new()),
            EventKind::ArrayOpen => return Err((line, "lists of lists are not used".into())),
            EventKind::ArrayClose => {
                let (k, l) = key
                    .take()
                    .ok_or((line, "a value without a key".to_string()))?;
                entries.push(Entry {
                    key: k,
                    line: l,
                    value: Value::Array(array.take().unwrap_or_default()),
                });
            }
            EventKind::Scalar => {
                let (text_value, kind) = decode(ev)?;
                let v = match kind {
                    ScalarKind::Boolean(b) if array.is_none() => Value::Bool(b),
                    ScalarKind::String | ScalarKind::Float => Value::Text(text_value),
                    ScalarKind::Integer(IntegerRadix::Dec) => {
                        Value::Text(text_value.replace('_', ""))
                    }
                    ScalarKind::Integer(_) => {
                        return Err((line, "write numbers in decimal".into()))
                    }
                    ScalarKind::Boolean(_) => {
                        return Err((line, "a list holds strings or numbers".into()))
                    }
                    ScalarKind::DateTime => {
                        let k = key.as_ref().map_or("", |(k, _)| k.as_str());
                        let raw = source.get(ev).map_or("", |r| r.as_str());
                        return Err((
                            line,
                            format!("{k}: not a value vncap takes; quote it: {k} = \"{raw}\""),
                        ));
                    }
                };
                match (&mut array, v) {
                    (Some(items), Value::Text(t)) => items.push(t),
                    (Some(_), _) => unreachable!("booleans are refused in lists above"),
                    (None, v) => {
                        let (k, l) = key
                            .take()
                            .ok_or((line, "a value without a key".to_string()))?;
                        entries.push(Entry {
                            key: k,
                            line: l,
                            value: v,
                        });
                    }
                }
            }
            EventKind::StdTableClose | EventKind::ArrayTableClose | EventKind::InlineTableClose => {
            }
            EventKind::Error => return Err((line, "not TOML".into())),
        }
    }
    Ok(entries)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::Serve;

    fn strings(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    fn args(text: &str, given: &[&str]) -> Result<Vec<String>, String> {
        let options = Options::of::<Serve>("serve");
        to_args::<Serve>("serve", &options, Path::new("vncap.toml"), text, given).map(|(a, _)| a)
    }

    #[test]
    fn serve_options_come_from_argh() {
        let o = Options::of::<Serve>("serve");
        assert_eq!(
            o.get("control"),
            Some(&Opt {
                name: "control".into(),
                takes_value: true,
                repeats: false
            })
        );
        assert_eq!(o.get("require-tls").map(|o| o.takes_value), Some(false));
        assert_eq!(o.get("allowed-origin").map(|o| o.repeats), Some(true));
        assert!(o.get("help").is_none());
        assert!(o.list.len() > 20);
    }

    #[test]
    fn keys_become_arguments() {
        let text = "# settings\ncontrol = \"127.0.0.1:9999\"\nmax-sessions = 1_000\n\
                    require-tls = true\ncontrol-tls = false\n\
                    allowed-origin = ['https://a', \"https://b\"]\n";
        assert_eq!(
            args(text, &[]).unwrap(),
            strings(&[
                "--control",
                "127.0.0.1:9999",
                "--max-sessions",
                "1000",
                "--require-tls",
                "--allowed-origin",
                "https://a",
                "--allowed-origin",
                "https://b",
            ])
        );
        // The command line's options win: the file's are left out.
        assert_eq!(
            args(text, &["control", "allowed-origin"]).unwrap(),
            strings(&["--max-sessions", "1000", "--require-tls"])
        );
    }

    #[test]
    fn errors_name_the_key_and_the_line() {
        let cases = [
            (
                "control = \"127.0.0.1:1\"\nmax-session = 3\n",
                "vncap.toml:2: max-session: not an option",
            ),
            (
                "\n\nmax-sessions = 0\n",
                "vncap.toml:3: --max-sessions 0: must be a whole number 1-1000000",
            ),
            (
                "ticket-timeout = \"soon\"\n",
                "vncap.toml:1: --ticket-timeout soon: must be a whole number 1-86400",
            ),
            (
                "require-tls = \"yes\"\n",
                "vncap.toml:1: require-tls: must be true or false",
            ),
            ("control = true\n", "vncap.toml:1: control: takes a value"),
            (
                "control = [\"a:1\", \"b:2\"]\n",
                "vncap.toml:1: control: takes one value",
            ),
            (
                "max-tickets = 5\n\nmax-tickets = 6\n",
                "vncap.toml:3: max-tickets: set twice (first on line 1)",
            ),
            (
                "[serve]\ncontrol = \"a:1\"\n",
                "vncap.toml:1: [tables] are not used",
            ),
            ("serve.control = \"a:1\"\n", "vncap.toml:1: dotted keys"),
            (
                "control = \"a:1\"\nports = 7000-8000\n",
                "vncap.toml:2: ports: not a value vncap takes; quote it: ports = \"7000-8000\"",
            ),
            (
                "max-tickets = 5\ncontrol = \"a:1\n",
                "vncap.toml:2: not TOML",
            ),
            ("control\n", "vncap.toml:1: not TOML"),
            (
                "config = \"/etc/x\"\n",
                "vncap.toml:1: config: not an option",
            ),
            (
                "control = \"/tmp/sock\"\n",
                "a Unix socket is written unix:/tmp/sock",
            ),
        ];
        for (text, want) in cases {
            let err = args(text, &[]).unwrap_err();
            assert!(err.contains(want), "{text:?}: {err}");
        }
    }

    #[test]
    fn startup_errors_name_the_line_of_a_file_option() {
        let options = Options::of::<Serve>("serve");
        let (_, origins) = to_args::<Serve>(
            "serve",
            &options,
            Path::new("/etc/vncap/vncap.toml"),
            "\nticket-timeout = 400\n",
            &[],
        )
        .unwrap();
        assert_eq!(
            origins.annotate("--ticket-timeout 400: must be at most --max-ticket-timeout (300)".into()),
            "/etc/vncap/vncap.toml:2: --ticket-timeout 400: must be at most --max-ticket-timeout (300)"
        );
        assert_eq!(
            origins.annotate("--control x: busy".into()),
            "--control x: busy"
        );
    }

    /// A settings file is an operator's, not a peer's, but a typo must get
    /// an error, never a panic: the shipped file and TOML's corner cases,
    /// cut short at every byte and with bytes replaced (a bounded,
    /// deterministic sweep).
    #[test]
    fn damaged_files_get_errors_not_panics() {
        let shipped = include_str!("../../dist/vncap.toml").replace("\n#", "\n");
        let corners = r#"a = "\u00e9\""
b = '''x
y'''
c = [1, [2]]
d = {e = 1}
[t]
[[u]]
f.g = 1
h = 1979-05-27
i = 0x1F
j = inf
k = "\q"
é = 1
"#;
        let options = Options::of::<Serve>("serve");
        let mut seed = 0x2545_f491_u32;
        let alphabet = b"=\"'[]{}.,#\n\\ 0a-";
        for base in [shipped.as_str(), corners] {
            let bytes = base.as_bytes();
            for cut in 0..=bytes.len() {
                let text = String::from_utf8_lossy(&bytes[..cut]);
                let _ = to_args::<Serve>("serve", &options, Path::new("f"), &text, &[]);
            }
            for _ in 0..300 {
                let mut b = bytes.to_vec();
                for _ in 0..3 {
                    seed ^= seed << 13;
                    seed ^= seed >> 17;
                    seed ^= seed << 5;
                    let i = seed as usize % b.len();
                    b[i] = alphabet[(seed >> 8) as usize % alphabet.len()];
                }
                let text = String::from_utf8_lossy(&b);
                let _ = to_args::<Serve>("serve", &options, Path::new("f"), &text, &[]);
            }
        }
    }

    #[test]
    fn expand_puts_the_file_first() {
        let dir = std::env::temp_dir().join(format!("vncap-config-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("vncap.toml");
        std::fs::write(&file, "max-sessions = 9\nlog-level = \"debug\"\n").unwrap();
        let cli = strings(&["--config", file.to_str().unwrap(), "--log-level", "warn"]);
        let (all, _) = expand::<Serve>("serve", cli.clone()).unwrap();
        let mut want = strings(&["--max-sessions", "9"]);
        want.extend(cli);
        assert_eq!(all, want);
        std::fs::remove_dir_all(&dir).unwrap();
        let missing = strings(&["--config", "/nonexistent/vncap.toml"]);
        let err = expand::<Serve>("serve", missing).unwrap_err();
        assert!(
            err.starts_with("--config /nonexistent/vncap.toml: "),
            "{err}"
        );
    }
}
