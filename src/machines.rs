//! Nix's machines-file syntax (`builders`, `/etc/nix/machines`, `--builder`), completely: parse,
//! validate, print.
//!
//! Builders are declared once, for nix; nixdispatch reads the same declarations so that it
//! probes, plans and hands back to nix exactly the machines nix would use. The syntax, as nix
//! reads it: entries split by newline or `;`, `#` starts a comment that runs to the end of the
//! entry, `@FILE` includes another file (a missing file is skipped), and up to eight
//! whitespace-separated fields per entry, `-` or absent meaning the default:
//!
//! ```text
//! URI  SYSTEMS  SSH-KEY  MAX-JOBS  SPEED-FACTOR  SUPPORTED-FEATURES  MANDATORY-FEATURES  HOST-KEY
//! ssh-ng://builder@seasmoke x86_64-linux,aarch64-linux /root/.ssh/id 8 2.5 big-parallel,kvm - c3NoLWVk…
//! ```
//!
//! Parsing is pure: included files are read through a callback. Validation is stricter than
//! nix's where nix would go on to misbehave (an ssh host that ssh would read as an option, a
//! ninth field, a host key that is not base64): every error names the origin, the line, the
//! field and the fix.

use crate::store_uri::StoreUri;
use base64::Engine as _;
use serde::Serialize;
use std::fmt;
use std::path::{Path, PathBuf};

/// How deeply `@FILE` includes may nest before the parser calls it a loop. Nix has no limit (a
/// loop overflows its stack); real configurations nest one or two levels.
pub const MAX_INCLUDE_DEPTH: usize = 16;

/// How many `@FILE` includes one parse may read in all: a file that includes others many times
/// per level would otherwise multiply without bound. Real configurations read a handful.
pub const MAX_INCLUDES: usize = 256;

/// The largest included file read: a machines file is a few lines per builder.
pub const MAX_INCLUDE_BYTES: u64 = 1 << 20;

/// The callback that reads an `@FILE` include: its text, `Ok(None)` for a file nix would skip
/// (missing), or why it must not be read (the parser adds the origin and line).
pub type ReadInclude<'a> = dyn FnMut(&Path) -> Result<Option<String>, String> + 'a;

/// One remote builder, as one machines-file entry declares it.
///
/// Fields hold what the entry says, normalised the way nix normalises it: a URI without `://`
/// gets `ssh://`, lists are de-duplicated, and an absent field holds its default (an empty
/// `systems` list means "the system of the machine running nix", as in nix).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Machine {
    /// The store URI, e.g. `ssh-ng://builder@seasmoke` or `ssh://seasmoke:2222`, parsed (its
    /// ssh user, host and port are `uri.ssh()`); prints as written.
    pub uri: StoreUri,
    /// The systems it builds for (`x86_64-linux`, …); empty means nix's default, this machine's
    /// own system.
    pub systems: Vec<String>,
    /// The private key ssh authenticates with, when the entry names one.
    pub ssh_key: Option<String>,
    /// How many builds nix runs on it at once (default 1).
    pub max_jobs: u32,
    /// Its relative speed; nix prefers faster builders (default 1).
    pub speed_factor: f64,
    /// Features it supports (`kvm`, `big-parallel`, …).
    pub supported_features: Vec<String>,
    /// Features a derivation must require to be built on it.
    pub mandatory_features: Vec<String>,
    /// The base64 of its public host key line (`ssh-ed25519 AAAA…`), when the entry pins one;
    /// ssh then trusts that key instead of the user's known_hosts.
    pub public_host_key: Option<String>,
}

/// The eight fields of a machines-file entry, numbered from 1 as the errors count them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Field {
    /// Field 1, the store URI.
    Uri = 1,
    /// Field 2, the comma-separated systems.
    Systems,
    /// Field 3, the ssh private key.
    SshKey,
    /// Field 4, the maximum number of jobs.
    MaxJobs,
    /// Field 5, the speed factor.
    SpeedFactor,
    /// Field 6, the supported features.
    SupportedFeatures,
    /// Field 7, the mandatory features.
    MandatoryFeatures,
    /// Field 8, the base64 public host key.
    PublicHostKey,
}

impl Field {
    /// The field's name as nix's manual spells it.
    pub fn name(self) -> &'static str {
        match self {
            Field::Uri => "URI",
            Field::Systems => "systems",
            Field::SshKey => "sshKey",
            Field::MaxJobs => "maxJobs",
            Field::SpeedFactor => "speedFactor",
            Field::SupportedFeatures => "supportedFeatures",
            Field::MandatoryFeatures => "mandatoryFeatures",
            Field::PublicHostKey => "publicHostKey",
        }
    }

    /// The field's position in an entry, from 1.
    pub fn number(self) -> usize {
        self as usize
    }
}

/// A malformed machines entry: where it is (origin, line, field) and what is wrong, with the fix.
///
/// Displays as one line, e.g.
/// `/etc/nix/machines, line 3, field 4 (maxJobs): "eight" is not a whole number: …`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct MachinesError {
    /// Where the text came from: a file path, `--builder`, or `nix's builders setting`.
    pub origin: String,
    /// The line within that origin, from 1.
    pub line: usize,
    /// The field at fault, when one is.
    pub field: Option<Field>,
    /// What is wrong and how to fix it.
    pub problem: String,
}

impl fmt::Display for MachinesError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}, line {}", self.origin, self.line)?;
        if let Some(field) = self.field {
            write!(f, ", field {} ({})", field.number(), field.name())?;
        }
        write!(f, ": {}", self.problem)
    }
}

impl From<MachinesError> for crate::Error {
    fn from(err: MachinesError) -> Self {
        crate::Error::Input(err.to_string())
    }
}

/// A host key field that does not decode to a `type key` line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the public host key {key:?} {why}: give the base64 of the builder's host key line (`base64 -w0 /etc/ssh/ssh_host_ed25519_key.pub`), or -")]
pub struct HostKeyError {
    /// The field as written.
    pub key: String,
    /// What is wrong with it.
    pub why: String,
}

/// How a speed factor is printed: nix reads floats from 2.20 on, and whole numbers only before
/// (Lix included).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SpeedFactorSyntax {
    /// As written: whole numbers without a point, fractions with one (nix 2.20+). Round-trips.
    Float,
    /// Rounded to a whole number, at least 1 (nix before 2.20, Lix).
    Integer,
}

/// Parses machines-file text: every entry of `text` and of the files it includes.
///
/// `origin` names the text in errors (a file path, `--builder`, `nix's builders setting`).
/// `read_include` returns the contents of an `@FILE` include, or `None` when the file does not
/// exist, which nix silently skips, as this does. An include that is already being read is an
/// error (nix would recurse until it crashes).
pub fn parse_machines(
    text: &str,
    origin: &str,
    read_include: &mut dyn FnMut(&Path) -> Option<String>,
) -> Result<Vec<Machine>, MachinesError> {
    parse_machines_checked(text, origin, &mut |p: &Path| Ok(read_include(p)))
}

/// Like [`parse_machines`], with a reader that may refuse a file (see [`read_include_file`]).
/// At most [`MAX_INCLUDES`] includes are read in all.
pub fn parse_machines_checked(
    text: &str,
    origin: &str,
    read_include: &mut ReadInclude<'_>,
) -> Result<Vec<Machine>, MachinesError> {
    let mut machines = Vec::new();
    let mut reading = Reading::default();
    parse_into(text, origin, read_include, &mut reading, &mut machines)?;
    Ok(machines)
}

/// The includes being read (innermost last) and how many were read in all.
#[derive(Default)]
struct Reading {
    stack: Vec<PathBuf>,
    count: usize,
}

/// Reads an `@FILE` include as nix would, with bounds nix lacks: a missing (or unreadable)
/// file is skipped, as nix does; what is not a regular file (`/dev/zero`, a FIFO, a
/// directory) is refused without reading or blocking, and so is a file over
/// [`MAX_INCLUDE_BYTES`].
pub fn read_include_file(path: &Path) -> Result<Option<String>, String> {
    use std::io::Read as _;
    use std::os::unix::fs::{FileTypeExt as _, OpenOptionsExt as _};
    // Non-blocking: opening a FIFO for reading would otherwise wait for a writer.
    let file = match std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)
    {
        Ok(f) => f,
        Err(_) => return Ok(None),
    };
    let Ok(meta) = file.metadata() else {
        return Ok(None);
    };
    let kind = meta.file_type();
    if !kind.is_file() {
        let what = if kind.is_dir() {
            "a directory"
        } else if kind.is_fifo() {
            "a FIFO"
        } else if kind.is_char_device() {
            "a character device"
        } else if kind.is_block_device() {
            "a block device"
        } else if kind.is_socket() {
            "a socket"
        } else {
            "not a regular file"
        };
        return Err(format!(
            "@{} is {what}, not a machines file: include a regular file",
            path.display()
        ));
    }
    let too_big = || {
        format!(
            "@{} is larger than {} KiB, too big for a machines file: include the right file",
            path.display(),
            MAX_INCLUDE_BYTES >> 10
        )
    };
    if meta.len() > MAX_INCLUDE_BYTES {
        return Err(too_big());
    }
    let mut bytes = Vec::new();
    if file
        .take(MAX_INCLUDE_BYTES + 1)
        .read_to_end(&mut bytes)
        .is_err()
    {
        return Ok(None);
    }
    if bytes.len() as u64 > MAX_INCLUDE_BYTES {
        return Err(too_big());
    }
    Ok(Some(String::from_utf8_lossy(&bytes).into_owned()))
}

fn parse_into(
    text: &str,
    origin: &str,
    read_include: &mut ReadInclude<'_>,
    reading: &mut Reading,
    machines: &mut Vec<Machine>,
) -> Result<(), MachinesError> {
    for (index, line) in text.split('\n').enumerate() {
        let line_no = index + 1;
        for entry in line.split(';') {
            let entry = match entry.find('#') {
                Some(hash) => &entry[..hash],
                None => entry,
            };
            let entry = entry.trim_matches(is_nix_space);
            if entry.is_empty() {
                continue;
            }
            if let Some(include) = entry.strip_prefix('@') {
                let path = PathBuf::from(include.trim_matches(is_nix_space));
                if path.as_os_str().is_empty() {
                    continue;
                }
                let err = |problem: String| MachinesError {
                    origin: origin.to_owned(),
                    line: line_no,
                    field: None,
                    problem,
                };
                if reading.stack.contains(&path) {
                    return Err(err(format!(
                        "@{} includes a file that is already being read (an include loop): remove one of the includes",
                        path.display()
                    )));
                }
                if reading.stack.len() >= MAX_INCLUDE_DEPTH {
                    return Err(err(format!(
                        "@{} nests includes more than {MAX_INCLUDE_DEPTH} deep (an include loop?): include each file once",
                        path.display()
                    )));
                }
                if reading.count >= MAX_INCLUDES {
                    return Err(err(format!(
                        "@{} would be include number {}, more than {MAX_INCLUDES} (a file included over and over?): include each file once",
                        path.display(),
                        reading.count + 1
                    )));
                }
                reading.count += 1;
                if let Some(included) = read_include(&path).map_err(err)? {
                    reading.stack.push(path.clone());
                    let included_origin = path.display().to_string();
                    let result =
                        parse_into(&included, &included_origin, read_include, reading, machines);
                    reading.stack.pop();
                    result?;
                }
                continue;
            }
            let machine = parse_entry(entry).map_err(|(field, problem)| MachinesError {
                origin: origin.to_owned(),
                line: line_no,
                field,
                problem,
            })?;
            machines.push(machine);
        }
    }
    Ok(())
}

/// The whitespace nix splits fields on.
fn is_nix_space(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\r' | '\n')
}

type EntryError = (Option<Field>, String);

fn parse_entry(entry: &str) -> Result<Machine, EntryError> {
    let tokens: Vec<&str> = entry
        .split(is_nix_space)
        .filter(|t| !t.is_empty())
        .collect();
    if tokens.len() > 8 {
        return Err((
            None,
            format!(
                "{} fields, but an entry has at most 8: separate systems and features with commas, without spaces",
                tokens.len()
            ),
        ));
    }
    for (i, token) in tokens.iter().enumerate() {
        if let Some(c) = token.chars().find(|c| c.is_control()) {
            return Err((
                field_at(i),
                format!("{token:?} contains the control character {c:?}: remove it"),
            ));
        }
    }
    // `-` and a missing field both mean the default.
    let get = |i: usize| tokens.get(i).copied().filter(|t| *t != "-");

    let uri = match get(0) {
        Some(uri) => StoreUri::parse(uri).map_err(|p| (Some(Field::Uri), p))?,
        None => {
            return Err((
                Some(Field::Uri),
                "the entry has no store URI: start it with the builder, e.g. ssh-ng://HOST".into(),
            ))
        }
    };
    let systems = match get(1) {
        Some(text) => {
            let list = comma_list(text);
            if list.is_empty() {
                return Err((
                    Some(Field::Systems),
                    format!("{text:?} names no system: write e.g. x86_64-linux, or - for this machine's own"),
                ));
            }
            list
        }
        None => Vec::new(),
    };
    let ssh_key = get(2).map(str::to_owned);
    let max_jobs = match get(3) {
        Some(text) => parse_max_jobs(text).map_err(|p| (Some(Field::MaxJobs), p))?,
        None => 1,
    };
    let speed_factor = match get(4) {
        Some(text) => parse_speed_factor(text).map_err(|p| (Some(Field::SpeedFactor), p))?,
        None => 1.0,
    };
    let supported_features = get(5).map(comma_list).unwrap_or_default();
    let mandatory_features = get(6).map(comma_list).unwrap_or_default();
    let public_host_key = match get(7) {
        Some(key) => {
            decode_host_key_line(key).map_err(|e| (Some(Field::PublicHostKey), e.to_string()))?;
            Some(key.to_owned())
        }
        None => None,
    };
    Ok(Machine {
        uri,
        systems,
        ssh_key,
        max_jobs,
        speed_factor,
        supported_features,
        mandatory_features,
        public_host_key,
    })
}

fn field_at(index: usize) -> Option<Field> {
    Some(match index {
        0 => Field::Uri,
        1 => Field::Systems,
        2 => Field::SshKey,
        3 => Field::MaxJobs,
        4 => Field::SpeedFactor,
        5 => Field::SupportedFeatures,
        6 => Field::MandatoryFeatures,
        7 => Field::PublicHostKey,
        _ => return None,
    })
}

/// A comma-separated list, empty items dropped and duplicates removed (nix reads it as a set).
fn comma_list(text: &str) -> Vec<String> {
    let mut list: Vec<String> = Vec::new();
    for item in text.split(',').filter(|s| !s.is_empty()) {
        if !list.iter().any(|x| x == item) {
            list.push(item.to_owned());
        }
    }
    list
}

fn parse_max_jobs(text: &str) -> Result<u32, String> {
    let fix = "write how many builds it may run at once, e.g. 8, or - for 1";
    if !text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("{text:?} is not a whole number: {fix}"));
    }
    text.parse::<u32>()
        .map_err(|_| format!("{text:?} is too large: {fix}"))
}

fn parse_speed_factor(text: &str) -> Result<f64, String> {
    let fix = "write a positive number such as 2 or 1.5, or - for 1";
    let plausible = text.bytes().all(|b| {
        b.is_ascii_digit() || b == b'.' || b == b'e' || b == b'E' || b == b'+' || b == b'-'
    });
    match text.parse::<f64>() {
        Ok(value) if plausible && value.is_finite() && value >= 0.0 => Ok(value),
        Ok(_) if plausible => Err(format!("{text:?} is not a positive number: {fix}")),
        _ => Err(format!("{text:?} is not a number: {fix}")),
    }
}

fn decode_host_key_line(key: &str) -> Result<String, HostKeyError> {
    let fail = |why: &str| HostKeyError {
        key: key.to_owned(),
        why: why.to_owned(),
    };
    let engine = base64::engine::GeneralPurpose::new(
        &base64::alphabet::STANDARD,
        base64::engine::GeneralPurposeConfig::new()
            .with_decode_padding_mode(base64::engine::DecodePaddingMode::Indifferent)
            .with_decode_allow_trailing_bits(true),
    );
    let bytes = engine
        .decode(key)
        .map_err(|_| fail("is not valid base64"))?;
    let text = String::from_utf8(bytes).map_err(|_| fail("does not decode to text"))?;
    let mut words = text.split_whitespace();
    let (kind, body) = match (words.next(), words.next()) {
        (Some(kind), Some(body)) if !text.trim().contains(['\n', '\r']) => (kind, body),
        _ => return Err(fail("does not decode to one \"TYPE KEY\" line")),
    };
    // ssh skips a known_hosts line whose key it cannot read, and then reports "host key
    // verification failed" as if the builder's key were wrong: check the key part here.
    let blob = engine.decode(body).map_err(|_| {
        fail(&format!(
            "decodes to a {kind} key whose key part is not base64"
        ))
    })?;
    let named = blob
        .get(..4)
        .map(|len| u32::from_be_bytes([len[0], len[1], len[2], len[3]]) as usize)
        .and_then(|len| blob.get(4..4 + len));
    if named != Some(kind.as_bytes()) {
        return Err(fail(&format!(
            "decodes to a line whose key part is not an ssh {kind} public key"
        )));
    }
    Ok(format!("{kind} {body}"))
}

/// Why a machine's features do not take a derivation (see [`Machine::feature_mismatch`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FeatureMismatch<'a> {
    /// The derivation requires this feature and the machine neither supports it nor makes it
    /// mandatory.
    Lacks(&'a str),
    /// The machine takes only derivations requiring this (mandatory) feature.
    OnlyRequiring(&'a str),
}

/// The known_hosts name ssh looks a host up by: the bare host on port 22 (named or not),
/// `[host]:port` on any other port.
pub fn known_hosts_name(host: &str, port: Option<u16>) -> String {
    match port {
        Some(port) if port != 22 => format!("[{host}]:{port}"),
        _ => host.to_owned(),
    }
}

impl Machine {
    /// A machine with nix's defaults for everything but the URI (normalised as nix does), for
    /// callers that build one from parts.
    pub fn new(uri: &str) -> Result<Machine, MachinesError> {
        let uri = StoreUri::parse(uri).map_err(|problem| MachinesError {
            origin: "a builder URI".into(),
            line: 1,
            field: Some(Field::Uri),
            problem,
        })?;
        Ok(Machine {
            uri,
            systems: Vec::new(),
            ssh_key: None,
            max_jobs: 1,
            speed_factor: 1.0,
            supported_features: Vec::new(),
            mandatory_features: Vec::new(),
            public_host_key: None,
        })
    }

    /// The store type: `ssh`, `ssh-ng`, another URI scheme, or `local`/`daemon`/`auto` (see
    /// [`StoreUri::scheme`]).
    pub fn scheme(&self) -> &str {
        self.uri.scheme()
    }

    /// The short name people know the builder by, the contract's JSON `host` (see
    /// [`StoreUri::host_label`]).
    pub fn host_label(&self) -> &str {
        self.uri.host_label()
    }

    /// The entry as one machines line with all eight fields, `-` for defaults. Parsing the line
    /// again gives an equal machine.
    pub fn to_line(&self) -> String {
        self.to_line_as(SpeedFactorSyntax::Float)
    }

    /// The entry as one machines line, with the speed factor in the syntax a given nix reads.
    pub fn to_line_as(&self, speed: SpeedFactorSyntax) -> String {
        fn list(items: &[String]) -> String {
            if items.is_empty() {
                "-".into()
            } else {
                items.join(",")
            }
        }
        let speed_factor = match speed {
            SpeedFactorSyntax::Float => format_float(self.speed_factor),
            SpeedFactorSyntax::Integer => format!("{}", self.speed_factor.round().max(1.0) as u64),
        };
        [
            self.uri.to_string(),
            list(&self.systems),
            self.ssh_key.clone().unwrap_or_else(|| "-".into()),
            self.max_jobs.to_string(),
            speed_factor,
            list(&self.supported_features),
            list(&self.mandatory_features),
            self.public_host_key.clone().unwrap_or_else(|| "-".into()),
        ]
        .join(" ")
    }

    /// Whether nix's build hook would send a derivation for `system` requiring
    /// `required_features` to this machine: the system is one of its systems (or `builtin`),
    /// every required feature is supported or mandatory, and every mandatory feature is
    /// required. An empty `systems` list (nix's default) matches only `builtin` here: resolve the
    /// default first, e.g. with [`Machine::can_build_with_systems`].
    pub fn can_build(&self, system: &str, required_features: &[String]) -> bool {
        self.can_build_with_systems(&self.systems, system, required_features)
    }

    /// [`Machine::can_build`] with the systems taken from elsewhere (as probed on the builder,
    /// or nix's default), the features from this entry.
    pub fn can_build_with_systems(
        &self,
        systems: &[String],
        system: &str,
        required_features: &[String],
    ) -> bool {
        (system == "builtin" || systems.iter().any(|s| s == system))
            && self.supports_features(required_features)
    }

    /// The feature half of nix's rule: every required feature supported or mandatory, every
    /// mandatory feature required.
    pub fn supports_features(&self, required_features: &[String]) -> bool {
        self.feature_mismatch(required_features).is_none()
    }

    /// Where the feature half of nix's rule fails, first failure first: a required feature
    /// neither supported nor mandatory, else a mandatory feature not required.
    pub fn feature_mismatch<'s>(
        &'s self,
        required_features: &'s [String],
    ) -> Option<FeatureMismatch<'s>> {
        if let Some(f) = required_features
            .iter()
            .find(|f| !self.supported_features.contains(f) && !self.mandatory_features.contains(f))
        {
            return Some(FeatureMismatch::Lacks(f));
        }
        self.mandatory_features
            .iter()
            .find(|f| !required_features.contains(f))
            .map(|f| FeatureMismatch::OnlyRequiring(f))
    }

    /// The pinned host key as the `TYPE KEY` text of a known_hosts entry, or `None` when the
    /// entry pins none.
    pub fn decode_host_key(&self) -> Result<Option<String>, HostKeyError> {
        self.public_host_key
            .as_deref()
            .map(decode_host_key_line)
            .transpose()
    }

    /// The known_hosts line that pins this entry's host key for ssh (`seasmoke ssh-ed25519
    /// AAAA…`, `[seasmoke]:2222 …`), or `None` when the entry pins none or is not an ssh URI.
    pub fn known_hosts_line(&self) -> Result<Option<String>, HostKeyError> {
        let (Some(key), Some(ssh)) = (self.decode_host_key()?, self.uri.ssh()) else {
            return Ok(None);
        };
        Ok(Some(format!(
            "{} {key}",
            known_hosts_name(&ssh.host, ssh.port)
        )))
    }

    /// The store URI with this entry's ssh key and host key as query parameters, so that nix
    /// can open the builder's store (as a substituter) the way the build hook opens it.
    pub fn store_uri(&self) -> String {
        let mut params = Vec::new();
        if let Some(key) = &self.ssh_key {
            params.push(format!("ssh-key={}", percent_encode(key)));
        }
        if let Some(host_key) = &self.public_host_key {
            params.push(format!(
                "base64-ssh-public-host-key={}",
                percent_encode(host_key)
            ));
        }
        if params.is_empty() {
            return self.uri.to_string();
        }
        let joiner = if self.uri.query().is_some() { '&' } else { '?' };
        format!("{}{joiner}{}", self.uri, params.join("&"))
    }
}

/// The shortest text that parses back to the same float; whole numbers without a point.
fn format_float(value: f64) -> String {
    format!("{value}")
}

fn percent_encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~/".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn no_files(_: &Path) -> Option<String> {
        None
    }

    fn parse(text: &str) -> Vec<Machine> {
        match parse_machines(text, "test", &mut no_files) {
            Ok(m) => m,
            Err(e) => panic!("{text:?}: {e}"),
        }
    }

    fn parse_err(text: &str) -> String {
        match parse_machines(text, "/etc/nix/machines", &mut no_files) {
            Ok(m) => panic!("{text:?} parsed as {m:?}"),
            Err(e) => e.to_string(),
        }
    }

    fn one(text: &str) -> Machine {
        let mut all = parse(text);
        assert_eq!(all.len(), 1, "{text:?}");
        all.remove(0)
    }

    fn strings(items: &[&str]) -> Vec<String> {
        items.iter().map(|s| s.to_string()).collect()
    }

    // base64 of "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIJ4ZKXn5sL0T1b1xYmN0aXRsZWtleQ root@seasmoke\n"
    fn host_key() -> String {
        base64::engine::general_purpose::STANDARD.encode(
            "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIJ4ZKXn5sL0T1b1xYmN0aXRsZWtleQ root@seasmoke\n",
        )
    }

    #[test]
    fn all_eight_fields() {
        let key = host_key();
        let m = one(&format!(
            "ssh-ng://builder@seasmoke x86_64-linux,aarch64-linux /root/.ssh/id 8 2.5 big-parallel,kvm benchmark {key}"
        ));
        assert_eq!(m.uri, "ssh-ng://builder@seasmoke");
        assert_eq!(m.systems, strings(&["x86_64-linux", "aarch64-linux"]));
        assert_eq!(m.ssh_key.as_deref(), Some("/root/.ssh/id"));
        assert_eq!(m.max_jobs, 8);
        assert_eq!(m.speed_factor, 2.5);
        assert_eq!(m.supported_features, strings(&["big-parallel", "kvm"]));
        assert_eq!(m.mandatory_features, strings(&["benchmark"]));
        assert_eq!(m.public_host_key.as_deref(), Some(key.as_str()));
        assert_eq!(m.scheme(), "ssh-ng");
        assert_eq!(m.uri.ssh().and_then(|s| s.user.as_deref()), Some("builder"));
        assert_eq!(m.uri.ssh().map(|s| s.host.as_str()), Some("seasmoke"));
        assert_eq!(m.uri.ssh().and_then(|s| s.port), None);
        assert_eq!(m.host_label(), "seasmoke");
    }

    #[test]
    fn defaults_for_dash_and_missing_fields() {
        let m = one("seasmoke");
        assert_eq!(m.uri, "ssh://seasmoke");
        assert!(m.systems.is_empty());
        assert_eq!(m.ssh_key, None);
        assert_eq!(m.max_jobs, 1);
        assert_eq!(m.speed_factor, 1.0);
        assert!(m.supported_features.is_empty() && m.mandatory_features.is_empty());
        assert_eq!(m.public_host_key, None);
        assert_eq!(one("seasmoke - - - - - - -"), m);
    }

    #[test]
    fn uri_without_scheme_is_ssh() {
        assert_eq!(one("root@seasmoke:2222").uri, "ssh://root@seasmoke:2222");
        let m = one("root@seasmoke:2222");
        assert_eq!(m.scheme(), "ssh");
        assert_eq!(m.uri.ssh().and_then(|s| s.user.as_deref()), Some("root"));
        assert_eq!(m.uri.ssh().map(|s| s.host.as_str()), Some("seasmoke"));
        assert_eq!(m.uri.ssh().and_then(|s| s.port), Some(2222));
        assert_eq!(m.host_label(), "seasmoke");
    }

    #[test]
    fn ipv6_hosts() {
        let m = one("ssh-ng://[::1]:2200");
        assert_eq!(m.uri.ssh().map(|s| s.host.as_str()), Some("::1"));
        assert_eq!(m.uri.ssh().and_then(|s| s.port), Some(2200));
        let m = one("ssh://me@fe80::1");
        assert_eq!(m.uri.ssh().map(|s| s.host.as_str()), Some("fe80::1"));
        assert_eq!(m.uri.ssh().and_then(|s| s.port), None);
    }

    #[test]
    fn query_parameters_are_kept_and_not_part_of_the_host() {
        let m = one("ssh-ng://seasmoke?remote-store=/other x86_64-linux");
        assert_eq!(m.uri, "ssh-ng://seasmoke?remote-store=/other");
        assert_eq!(m.uri.ssh().map(|s| s.host.as_str()), Some("seasmoke"));
    }

    #[test]
    fn local_store_words_are_not_ssh() {
        for word in ["local", "daemon", "auto", "/some/store", "local?root=/x"] {
            let m = one(word);
            assert_eq!(m.uri, word);
            assert_eq!(m.uri.ssh().map(|s| s.host.as_str()), None);
            assert_eq!(m.host_label(), word);
        }
        assert_eq!(one("daemon").scheme(), "daemon");
        assert_eq!(one("/some/store").scheme(), "local");
    }

    #[test]
    fn entries_split_by_newline_and_semicolon_with_comments() {
        let text = "# builders\n\
                    ssh-ng://a x86_64-linux ; ssh-ng://b aarch64-linux # the arm one\n\
                    \n   \t\n\
                    ssh-ng://c # trailing comment; ssh-ng://d\r\n";
        let uris: Vec<String> = parse(text).into_iter().map(|m| m.uri.to_string()).collect();
        // As in nix, `;` ends an entry even inside a comment.
        assert_eq!(
            uris,
            strings(&["ssh-ng://a", "ssh-ng://b", "ssh-ng://c", "ssh-ng://d"])
        );
    }

    #[test]
    fn speed_factor_integer_or_float() {
        assert_eq!(one("h - - 1 2").speed_factor, 2.0);
        assert_eq!(one("h - - 1 0.5").speed_factor, 0.5);
        assert_eq!(one("h - - 1 1e1").speed_factor, 10.0);
    }

    #[test]
    fn lists_are_deduplicated() {
        let m = one("h x86_64-linux,,x86_64-linux - 1 1 kvm,kvm,,big-parallel");
        assert_eq!(m.systems, strings(&["x86_64-linux"]));
        assert_eq!(m.supported_features, strings(&["kvm", "big-parallel"]));
    }

    #[test]
    fn includes_are_read_through_the_callback() {
        let files: HashMap<&str, &str> = [
            ("/etc/nix/machines", "ssh-ng://a\n@/etc/nix/more"),
            ("/etc/nix/more", "ssh-ng://b; @/nowhere\nssh-ng://c"),
        ]
        .into_iter()
        .collect();
        let mut asked = Vec::new();
        let mut read = |p: &Path| {
            asked.push(p.display().to_string());
            files.get(p.to_str()?).map(|s| s.to_string())
        };
        let machines = parse_machines(
            "ssh-ng://z ; @/etc/nix/machines",
            "nix's builders setting",
            &mut read,
        );
        let uris: Vec<String> = machines
            .unwrap_or_default()
            .into_iter()
            .map(|m| m.uri.to_string())
            .collect();
        assert_eq!(
            uris,
            strings(&["ssh-ng://z", "ssh-ng://a", "ssh-ng://b", "ssh-ng://c"])
        );
        assert_eq!(
            asked,
            strings(&["/etc/nix/machines", "/etc/nix/more", "/nowhere"])
        );
    }

    #[test]
    fn include_errors_name_the_included_file() {
        let mut read =
            |p: &Path| (p == Path::new("/etc/nix/machines")).then(|| "a\nb - - x".to_string());
        let err = parse_machines("@/etc/nix/machines", "nix's builders setting", &mut read);
        assert_eq!(
            err.err().map(|e| e.to_string()).unwrap_or_default(),
            "/etc/nix/machines, line 2, field 4 (maxJobs): \"x\" is not a whole number: write how many builds it may run at once, e.g. 8, or - for 1"
        );
    }

    #[test]
    fn includes_that_multiply_are_capped() {
        // Each level includes the next ten times: 10^6 reads without a cap.
        let mut reads = 0;
        let mut read = |p: &Path| {
            reads += 1;
            let level: usize = p.to_str()?.trim_start_matches("/l").parse().ok()?;
            (level < 6).then(|| format!("@/l{}\n", level + 1).repeat(10))
        };
        let err = parse_machines("@/l0", "--builder", &mut read)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(err.contains("more than 256"), "{err}");
        assert!(reads <= MAX_INCLUDES, "{reads}");
    }

    #[test]
    fn special_files_are_refused_without_reading() {
        for (path, what) in [("/dev/zero", "a character device"), ("/", "a directory")] {
            let err = read_include_file(Path::new(path)).err().unwrap_or_default();
            assert!(err.contains(what), "{path}: {err}");
        }
        assert_eq!(
            read_include_file(Path::new("/nonexistent/machines")),
            Ok(None)
        );
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let fifo = dir.path().join("fifo");
        let c = std::ffi::CString::new(fifo.as_os_str().as_encoded_bytes())
            .unwrap_or_else(|e| panic!("{e}"));
        // SAFETY: mkfifo with a valid NUL-terminated path.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        let err = read_include_file(&fifo).err().unwrap_or_default();
        assert!(err.contains("a FIFO"), "{err}");
        let big = dir.path().join("big");
        std::fs::write(&big, vec![b'#'; (MAX_INCLUDE_BYTES + 1) as usize])
            .unwrap_or_else(|e| panic!("{e}"));
        let err = read_include_file(&big).err().unwrap_or_default();
        assert!(err.contains("larger than"), "{err}");
    }

    #[test]
    fn include_loops_are_errors() {
        let mut read = |p: &Path| match p.to_str() {
            Some("/a") => Some("ssh-ng://a\n@/b".to_string()),
            Some("/b") => Some("@/a".to_string()),
            _ => None,
        };
        let err = parse_machines("@/a", "--builder", &mut read)
            .err()
            .map(|e| e.to_string());
        let err = err.unwrap_or_default();
        assert!(
            err.starts_with("/b, line 1: @/a includes a file that is already being read"),
            "{err}"
        );

        // Spellings that differ only in `.` components are the same file.
        let mut read = |_: &Path| Some("@././a".to_string());
        let err = parse_machines("@./a", "test", &mut read)
            .err()
            .map(|e| e.to_string());
        assert!(err.unwrap_or_default().contains("already being read"));

        // Endless distinct names (e.g. a generated chain) end at the depth limit.
        let mut depth = 0;
        let mut read = |_: &Path| {
            depth += 1;
            Some(format!("@/chain/{depth}"))
        };
        let err = parse_machines("@x", "test", &mut read)
            .err()
            .map(|e| e.to_string());
        let err = err.unwrap_or_default();
        assert!(err.contains("more than 16 deep"), "{err}");
    }

    #[test]
    fn error_messages_name_origin_line_field_and_fix() {
        assert_eq!(
            parse_err("a\nb\nc x86_64-linux - eight"),
            "/etc/nix/machines, line 3, field 4 (maxJobs): \"eight\" is not a whole number: write how many builds it may run at once, e.g. 8, or - for 1"
        );
        assert!(
            parse_err("h - - 1 fast").contains("field 5 (speedFactor): \"fast\" is not a number")
        );
        assert!(parse_err("h - - 1 -2")
            .contains("field 5 (speedFactor): \"-2\" is not a positive number"));
        assert!(parse_err("h - - 1 inf").contains("field 5 (speedFactor)"));
        assert!(parse_err("h - - 1 NaN").contains("field 5 (speedFactor)"));
        assert!(parse_err("h - - -1").contains("field 4 (maxJobs)"));
        assert!(parse_err("h - - +1").contains("field 4 (maxJobs)"));
        assert!(parse_err("h - - 99999999999").contains("is too large"));
        assert!(parse_err("h - - - - - - notbase64!").contains("field 8 (publicHostKey)"));
        assert!(parse_err("h ,").contains("field 2 (systems)"));
        assert!(parse_err("h 1 2 3 4 5 6 7 8").contains("9 fields, but an entry has at most 8"));
    }

    #[test]
    fn option_shaped_and_broken_hosts_are_rejected() {
        let bad = [
            ("-oProxyCommand=evil", "could read it as an option"),
            ("ssh://-oProxyCommand=evil", "could read it as an option"),
            ("ssh-ng://-host", "could read it as an option"),
            ("ssh-ng://-user@host", "could read it as an option"),
            ("ssh-ng://", "host name is empty"),
            ("ssh-ng://user@", "host name is empty"),
            ("ssh-ng://@host", "user name before @ is empty"),
            ("ssh-ng://host:", "is not a port number"),
            ("ssh-ng://host:0", "is not a port number"),
            ("ssh-ng://host:70000", "is not a port number"),
            ("ssh-ng://host:22x", "is not a port number"),
            ("ssh-ng://host:+22", "is not a port number"),
            ("ssh-ng://host/path", "remove the path"),
            ("ssh-ng://[::1", "not closed"),
            ("ssh-ng://[::1]x", "is not :PORT"),
            ("://host", "no valid scheme"),
            ("ssh-ng://ho\u{7}st", "control character"),
        ];
        for (text, want) in bad {
            let err = parse_err(text);
            assert!(err.contains(want), "{text:?}: {err}");
            assert!(err.contains("field 1 (URI)"), "{text:?}: {err}");
        }
        // Non-breaking space is whitespace to ssh's argument but not a field separator.
        assert!(parse_err("ssh-ng://ho\u{a0}st").contains("contains"));
    }

    #[test]
    fn host_keys_decode_to_known_hosts_text() {
        let m = one(&format!("h - - - - - - {}", host_key()));
        assert_eq!(
            m.decode_host_key(),
            Ok(Some(
                "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIJ4ZKXn5sL0T1b1xYmN0aXRsZWtleQ".into()
            ))
        );
        assert_eq!(one("h").decode_host_key(), Ok(None));
        // Unpadded base64 is accepted, as nix accepts it.
        let unpadded = host_key().trim_end_matches('=').to_string();
        assert!(one(&format!("h - - - - - - {unpadded}"))
            .decode_host_key()
            .is_ok());
        // Base64 of something that is not a key line.
        let junk = base64::engine::general_purpose::STANDARD.encode("justoneword");
        assert!(parse_err(&format!("h - - - - - - {junk}")).contains("one \"TYPE KEY\" line"));
    }

    #[test]
    fn a_host_key_whose_key_part_cannot_be_decoded_is_a_field_8_error() {
        // ssh would skip such a known_hosts line and then blame the builder's host key.
        let b64 = |t: &str| base64::engine::general_purpose::STANDARD.encode(t);
        let not_base64 = b64("ssh-ed25519 not-a-key!");
        let err = parse_err(&format!("h - - - - - - {not_base64}"));
        assert!(
            err.starts_with("/etc/nix/machines, line 1, field 8 (publicHostKey)"),
            "{err}"
        );
        assert!(err.contains("key part is not base64"), "{err}");
        // A real key blob of another type under the ed25519 name.
        let rsa_blob = "AAAAB3NzaC1yc2EAAAADAQABAAABAQ";
        let err = parse_err(&format!(
            "h - - - - - - {}",
            b64(&format!("ssh-ed25519 {rsa_blob}"))
        ));
        assert!(err.contains("not an ssh ssh-ed25519 public key"), "{err}");
        let err = parse_err(&format!("\n# c\nh - - - - - - {}", b64("ssh-ed25519 AAAA")));
        assert!(err.contains("line 3, field 8"), "{err}");
    }

    #[test]
    fn the_pinned_key_is_written_under_the_name_ssh_looks_up() {
        let key = host_key();
        let line = |uri: &str| {
            one(&format!("{uri} - - - - - - {key}"))
                .known_hosts_line()
                .unwrap_or_else(|e| panic!("{e}"))
        };
        let pinned = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIJ4ZKXn5sL0T1b1xYmN0aXRsZWtleQ";
        assert_eq!(
            line("ssh-ng://seasmoke"),
            Some(format!("seasmoke {pinned}"))
        );
        // ssh looks port 22 up by the bare name, never as [host]:22.
        assert_eq!(
            line("ssh-ng://root@seasmoke:22"),
            Some(format!("seasmoke {pinned}"))
        );
        assert_eq!(
            line("ssh://seasmoke:2222"),
            Some(format!("[seasmoke]:2222 {pinned}"))
        );
        assert_eq!(one("ssh-ng://seasmoke").known_hosts_line(), Ok(None));
        assert_eq!(known_hosts_name("h", Some(22)), "h");
        assert_eq!(known_hosts_name("h", None), "h");
        assert_eq!(known_hosts_name("h", Some(2)), "[h]:2");
    }

    #[test]
    fn to_line_prints_all_fields() {
        let m = one("ssh-ng://seasmoke x86_64-linux - 8 2 big-parallel,kvm");
        assert_eq!(
            m.to_line(),
            "ssh-ng://seasmoke x86_64-linux - 8 2 big-parallel,kvm - -"
        );
        assert_eq!(one("h - - - 1.5").to_line(), "ssh://h - - 1 1.5 - - -");
        assert_eq!(
            one("h - - - 1.5").to_line_as(SpeedFactorSyntax::Integer),
            "ssh://h - - 1 2 - - -"
        );
        assert_eq!(
            one("h - - - 0.2").to_line_as(SpeedFactorSyntax::Integer),
            "ssh://h - - 1 1 - - -"
        );
    }

    #[test]
    fn can_build_follows_nix() {
        let m = one("h x86_64-linux - 1 1 kvm,big-parallel benchmark");
        let f = |v: &[&str]| strings(v);
        assert!(
            !m.can_build("x86_64-linux", &f(&[])),
            "mandatory feature not required"
        );
        assert!(m.can_build("x86_64-linux", &f(&["benchmark"])));
        assert!(m.can_build("x86_64-linux", &f(&["benchmark", "kvm"])));
        assert!(!m.can_build("x86_64-linux", &f(&["benchmark", "nixos-test"])));
        assert!(!m.can_build("aarch64-linux", &f(&["benchmark"])));
        assert!(m.can_build("builtin", &f(&["benchmark"])));
        let plain = one("h x86_64-linux");
        assert!(plain.can_build("x86_64-linux", &f(&[])));
        assert!(!plain.can_build("x86_64-linux", &f(&["kvm"])));
        let default_systems = one("h");
        assert!(!default_systems.can_build("x86_64-linux", &f(&[])));
        assert!(default_systems.can_build_with_systems(
            &f(&["x86_64-linux"]),
            "x86_64-linux",
            &f(&[])
        ));
    }

    #[test]
    fn store_uri_carries_keys() {
        assert_eq!(one("ssh-ng://h").store_uri(), "ssh-ng://h");
        assert_eq!(
            one("ssh-ng://h - /root/my+key").store_uri(),
            "ssh-ng://h?ssh-key=/root/my%2Bkey"
        );
        let m = one(
            "ssh-ng://h?compress=true - /k - - - - c3NoLWVkMjU1MTkgQUFBQUMzTnphQzFsWkRJMU5URTU=",
        );
        assert_eq!(
            m.store_uri(),
            "ssh-ng://h?compress=true&ssh-key=/k&base64-ssh-public-host-key=c3NoLWVkMjU1MTkgQUFBQUMzTnphQzFsWkRJMU5URTU%3D"
        );
    }

    #[test]
    fn machine_new_normalises() {
        let m = Machine::new("seasmoke").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(m.uri, "ssh://seasmoke");
        assert_eq!(m.max_jobs, 1);
        assert!(Machine::new("-x").is_err());
    }

    mod props {
        use super::*;
        use proptest::prelude::*;

        fn word() -> impl Strategy<Value = String> {
            "[a-z0-9_][a-z0-9_.+-]{0,12}"
        }

        fn machine() -> impl Strategy<Value = Machine> {
            (
                (
                    prop_oneof![Just("ssh"), Just("ssh-ng")],
                    proptest::option::of("[a-z][a-z0-9_]{0,6}"),
                    "[a-z0-9][a-z0-9.-]{0,15}",
                    proptest::option::of(1u16..),
                ),
                proptest::collection::vec(word(), 0..3),
                proptest::option::of("/[a-z/._-]{1,20}"),
                any::<u32>(),
                prop_oneof![(0.0f64..1e6), (0u32..100).prop_map(f64::from)],
                proptest::collection::vec(word(), 0..3),
                proptest::collection::vec(word(), 0..3),
                any::<bool>(),
            )
                .prop_map(
                    |((scheme, user, host, port), systems, key, jobs, speed, sup, mand, pin)| {
                        let mut uri = format!("{scheme}://");
                        if let Some(user) = user {
                            uri.push_str(&user);
                            uri.push('@');
                        }
                        uri.push_str(&host);
                        if let Some(port) = port {
                            uri.push_str(&format!(":{port}"));
                        }
                        Machine {
                            uri: StoreUri::parse(&uri).unwrap(),
                            systems: comma_list(&systems.join(",")),
                            ssh_key: key,
                            max_jobs: jobs,
                            speed_factor: speed,
                            supported_features: comma_list(&sup.join(",")),
                            mandatory_features: comma_list(&mand.join(",")),
                            public_host_key: pin.then(host_key),
                        }
                    },
                )
        }

        proptest! {
            #[test]
            fn print_then_parse_round_trips(m in machine()) {
                let line = m.to_line();
                let back = parse_machines(&line, "prop", &mut no_files)
                    .map_err(|e| TestCaseError::fail(format!("{line}: {e}")))?;
                prop_assert_eq!(back.len(), 1);
                prop_assert_eq!(&back[0], &m);
                prop_assert_eq!(back[0].to_line(), line);
            }

            #[test]
            fn parse_print_parse_is_stable(text in "[ -~\t\n]{0,80}") {
                if let Ok(first) = parse_machines(&text, "prop", &mut no_files) {
                    let printed: Vec<String> = first.iter().map(Machine::to_line).collect();
                    let again = parse_machines(&printed.join("\n"), "prop", &mut no_files)
                        .map_err(|e| TestCaseError::fail(format!("{printed:?}: {e}")))?;
                    prop_assert_eq!(again, first);
                }
            }

            #[test]
            fn never_panics(text in "\\PC{0,120}") {
                let _ = parse_machines(&text, "prop", &mut |_| Some(text.clone()));
            }
        }
    }
}
