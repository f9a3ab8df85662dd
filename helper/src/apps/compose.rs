//! The Compose subset an app is written in: parsed into types an installer
//! can use as they are, and checked before anything is pulled.
//!
//! See the module essay ([`super`]) for which keys are supported and why
//! the others are refused. Everything here is pure: [`parse`] takes the
//! text, [`load`] reads a file first.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::net::IpAddr;
use std::path::Path;
use std::time::Duration;

use super::interpolate::{interpolate, Vars};
use super::yaml::{self, Key, Node, Scalar, Value};
use super::{read_small_file, Error, Invalid};
use crate::reference::Reference;

/// The name of an app's Compose file in its directory.
pub const FILE_NAME: &str = "compose.yaml";
/// Largest Compose file read.
pub const MAX_FILE_BYTES: u64 = 1 << 20;

/// Top-level keys Berth reads (`name` and `version` are accepted and ignored,
/// as are extension keys `x-…`).
pub const TOP_LEVEL_KEYS: &[&str] = &["services", "volumes", "name", "version"];
/// Keys of a service Berth reads.
pub const SERVICE_KEYS: &[&str] = &[
    "image",
    "command",
    "entrypoint",
    "environment",
    "ports",
    "volumes",
    "depends_on",
    "restart",
    "user",
    "working_dir",
    "healthcheck",
    "mem_limit",
    "cpus",
    "pids_limit",
];
const PORT_KEYS: &[&str] = &["target", "published", "host_ip", "protocol"];
const MOUNT_KEYS: &[&str] = &["type", "source", "target", "read_only"];
const DEPENDS_KEYS: &[&str] = &["condition"];
const HEALTHCHECK_KEYS: &[&str] = &[
    "test",
    "interval",
    "timeout",
    "retries",
    "start_period",
    "start_interval",
    "disable",
];

/// A parsed, checked Compose file.
#[derive(Debug, Clone, PartialEq)]
pub struct ComposeFile {
    /// By name.
    pub services: BTreeMap<String, Service>,
    /// Named volumes declared at the top level (every volume a service uses
    /// is one of these).
    pub volumes: BTreeSet<String>,
}

/// One service: a container to run.
#[derive(Debug, Clone, PartialEq)]
pub struct Service {
    /// A DNS label: the name the other services reach it by.
    pub name: String,
    pub image: Reference,
    /// Replaces the image's Cmd. A string in the file is split into words
    /// the way Compose splits it; `Some(vec![])` clears the image's.
    pub command: Option<Vec<String>>,
    /// Replaces the image's Entrypoint, split like `command`.
    pub entrypoint: Option<Vec<String>>,
    /// Name → value; added to (and overriding) the image's.
    pub environment: BTreeMap<String, String>,
    pub ports: Vec<Port>,
    pub volumes: Vec<Mount>,
    /// Services to start first, with what to wait for.
    pub depends_on: BTreeMap<String, Condition>,
    pub restart: Restart,
    /// `USER[:GROUP]`, names or ids.
    pub user: Option<String>,
    /// An absolute path.
    pub working_dir: Option<String>,
    pub healthcheck: Option<Healthcheck>,
    /// Bytes.
    pub mem_limit: Option<u64>,
    /// Thousandths of a CPU (as [`berth_api::RunOptions::millicpus`]).
    pub millicpus: Option<u64>,
    /// Most processes; `None` (none given, or -1) gets Berth's default
    /// (`install::DEFAULT_PIDS_LIMIT`).
    pub pids_limit: Option<i64>,
}

impl Service {
    /// The environment as `KEY=VALUE` strings, sorted by name.
    pub fn env_list(&self) -> Vec<String> {
        self.environment
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect()
    }

    /// The port entry whose container side is `target` (TCP), if any.
    pub fn port(&self, target: u16) -> Option<&Port> {
        self.ports
            .iter()
            .find(|p| p.target == target && p.protocol == Protocol::Tcp)
    }
}

/// A published port: `[host_ip:][published:]target[/protocol]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Port {
    /// The port in the container.
    pub target: u16,
    /// The port on the host; `None`: the installer picks a free one.
    pub published: Option<u16>,
    /// The host address to listen on; `None`: all.
    pub host_ip: Option<IpAddr>,
    pub protocol: Protocol,
}

impl fmt::Display for Port {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.host_ip {
            Some(IpAddr::V6(ip)) => write!(f, "[{ip}]:")?,
            Some(ip) => write!(f, "{ip}:")?,
            None => {}
        }
        match (self.published, self.host_ip) {
            (Some(p), _) => write!(f, "{p}:")?,
            (None, Some(_)) => write!(f, ":")?,
            (None, None) => {}
        }
        write!(f, "{}/{}", self.target, self.protocol)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Protocol {
    Tcp,
    Udp,
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Protocol::Tcp => "tcp",
            Protocol::Udp => "udp",
        })
    }
}

/// A named volume mounted into a service. (Host directories are refused:
/// see the module essay.)
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mount {
    /// The volume's name, declared under the top-level `volumes`.
    pub source: String,
    /// Absolute path in the container.
    pub target: String,
    pub read_only: bool,
}

/// What `depends_on` waits for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Condition {
    /// `service_started`: the dependency's container has started.
    Started,
    /// `service_healthy`: its healthcheck passed.
    Healthy,
}

/// `restart`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Restart {
    #[default]
    No,
    Always,
    UnlessStopped,
    /// Restart after a non-zero exit, at most this many times if given.
    OnFailure(Option<u32>),
}

/// `healthcheck`. Fields not given keep the image's (Docker's behaviour).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Healthcheck {
    pub test: Option<HealthTest>,
    pub interval: Option<Duration>,
    pub timeout: Option<Duration>,
    pub retries: Option<u32>,
    pub start_period: Option<Duration>,
    pub start_interval: Option<Duration>,
}

impl Healthcheck {
    /// True when the healthcheck runs something (not disabled, has a test).
    pub fn has_test(&self) -> bool {
        matches!(
            self.test,
            Some(HealthTest::Cmd(_)) | Some(HealthTest::Shell(_))
        )
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HealthTest {
    /// `["CMD", prog, args…]`: run directly.
    Cmd(Vec<String>),
    /// `["CMD-SHELL", "…"]` or a string: run with `/bin/sh -c`.
    Shell(String),
    /// `["NONE"]` or `disable: true`: no healthcheck, not even the image's.
    Disabled,
}

impl ComposeFile {
    pub fn service(&self, name: &str) -> Option<&Service> {
        self.services.get(name)
    }

    /// The services in an order where each comes after everything it
    /// depends on; among services free to go, by name. (The file was
    /// checked to have no cycles, so every service is in it.)
    pub fn start_order(&self) -> Vec<&Service> {
        let mut waiting: BTreeMap<&str, BTreeSet<&str>> = self
            .services
            .values()
            .map(|s| {
                (
                    s.name.as_str(),
                    s.depends_on.keys().map(String::as_str).collect(),
                )
            })
            .collect();
        let mut order = Vec::with_capacity(waiting.len());
        while !waiting.is_empty() {
            let Some(next) = waiting
                .iter()
                .find(|(_, deps)| deps.is_empty())
                .map(|(n, _)| *n)
            else {
                break; // a cycle: cannot happen after parse()
            };
            waiting.remove(next);
            for deps in waiting.values_mut() {
                deps.remove(next);
            }
            order.push(&self.services[next]);
        }
        order
    }

    /// Every image the app needs, once each, in start order.
    pub fn images(&self) -> Vec<&Reference> {
        let mut seen = BTreeSet::new();
        self.start_order()
            .into_iter()
            .map(|s| &s.image)
            .filter(|r| seen.insert(r.to_string()))
            .collect()
    }
}

/// Read and parse the Compose file at `path`.
pub fn load(path: &Path, vars: &Vars) -> Result<ComposeFile, Error> {
    let bytes = read_small_file(path, MAX_FILE_BYTES, "Compose file")?;
    let text = String::from_utf8(bytes).map_err(|_| Invalid {
        file: path.to_path_buf(),
        line: None,
        key: String::new(),
        message: "not UTF-8 text".into(),
    })?;
    Ok(parse(&text, path, vars)?)
}

/// Parse and check a Compose file. `file` is only used in messages;
/// `vars` fill in `${NAME}` (see [`super::interpolate`]).
pub fn parse(text: &str, file: &Path, vars: &Vars) -> Result<ComposeFile, Invalid> {
    let cx = Cx { file, vars };
    let root = yaml::parse(text).map_err(|e| cx.invalid(e.line, "", e.message))?;
    let Some(top) = root.as_map() else {
        return Err(cx.invalid(
            root.line,
            "",
            format!(
                "the file is {}, not a Compose file (a mapping with `services:`)",
                root.kind()
            ),
        ));
    };
    cx.check_keys(top, TOP_LEVEL_KEYS, "", "top-level", true)?;

    let mut volumes = BTreeSet::new();
    if let Some((k, node)) = find(top, "volumes") {
        match &node.value {
            Value::Null => {}
            Value::Map(entries) => {
                for (name, def) in entries {
                    let at = format!("volumes.{}", name.name);
                    check_volume_name(&name.name).map_err(|m| cx.invalid(name.line, &at, m))?;
                    match &def.value {
                        Value::Null => {}
                        Value::Map(keys) if keys.is_empty() => {}
                        Value::Map(keys) => {
                            let (key, _) = &keys[0];
                            return Err(cx.invalid(
                                key.line,
                                format!("{at}.{}", key.name),
                                format!(
                                    "`{}` is not supported: a volume of an app is a directory Berth \
                                     keeps for it; declare it with no settings (`{}: {{}}`)",
                                    key.name, name.name
                                ),
                            ));
                        }
                        _ => {
                            return Err(cx.invalid(
                                def.line,
                                &at,
                                format!(
                                    "must be empty or `{{}}`, not {} (write `{}: {{}}`)",
                                    def.kind(),
                                    name.name
                                ),
                            ))
                        }
                    }
                    volumes.insert(name.name.clone());
                }
            }
            _ => {
                return Err(cx.invalid(
                    k.line,
                    "volumes",
                    format!("must be a mapping of volume names, not {}", node.kind()),
                ))
            }
        }
    }

    let Some((services_key, services_node)) = find(top, "services") else {
        return Err(cx.invalid(
            root.line,
            "services",
            "missing: a Compose file lists its containers under `services:`",
        ));
    };
    let entries = match &services_node.value {
        Value::Map(entries) if !entries.is_empty() => entries,
        _ => {
            return Err(cx.invalid(
                services_key.line,
                "services",
                "must list at least one service (`services: { web: { image: … } }`)",
            ))
        }
    };

    let mut services = BTreeMap::new();
    let mut lines = Lines::default();
    for (name, node) in entries {
        let service = cx.service(name, node, &volumes, &mut lines)?;
        services.insert(service.name.clone(), service);
    }
    let file = ComposeFile { services, volumes };
    cx.check_dependencies(&file, &lines)?;
    cx.check_port_conflicts(&file, &lines)?;
    Ok(file)
}

/// Where things were, for messages about relations between services.
#[derive(Default)]
struct Lines {
    service: BTreeMap<String, usize>,
    depends: BTreeMap<(String, String), usize>,
    ports: BTreeMap<String, Vec<usize>>,
}

fn find<'a>(map: &'a [(Key, Node)], key: &str) -> Option<&'a (Key, Node)> {
    map.iter().find(|(k, _)| k.name == key)
}

struct Cx<'a> {
    file: &'a Path,
    vars: &'a Vars,
}

impl Cx<'_> {
    fn invalid(&self, line: usize, key: impl Into<String>, message: impl Into<String>) -> Invalid {
        Invalid {
            file: self.file.to_path_buf(),
            line: Some(line),
            key: key.into(),
            message: message.into(),
        }
    }

    /// Refuse keys outside `allowed` (and `x-…` where `extensions`).
    fn check_keys(
        &self,
        map: &[(Key, Node)],
        allowed: &[&str],
        at: &str,
        what: &str,
        extensions: bool,
    ) -> Result<(), Invalid> {
        for (k, _) in map {
            if allowed.contains(&k.name.as_str()) || (extensions && k.name.starts_with("x-")) {
                continue;
            }
            let path = if at.is_empty() {
                k.name.clone()
            } else {
                format!("{at}.{}", k.name)
            };
            let why = match what {
                "top-level" => top_level_hint(&k.name),
                "service" => service_hint(&k.name),
                _ => None,
            }
            .unwrap_or("Berth does not support it");
            return Err(self.invalid(
                k.line,
                path,
                format!(
                    "`{}` is not supported: {why}. Berth supports these {what} keys: {}",
                    k.name,
                    allowed.join(", ")
                ),
            ));
        }
        Ok(())
    }

    /// A scalar as a string: strings interpolated, numbers and booleans as
    /// written.
    fn string(&self, node: &Node, at: &str) -> Result<String, Invalid> {
        match &node.value {
            Value::Scalar(Scalar::Str, s) => {
                interpolate(s, self.vars).map_err(|m| self.invalid(node.line, at, m))
            }
            Value::Scalar(_, s) => Ok(s.clone()),
            _ => Err(self.invalid(
                node.line,
                at,
                format!("must be a string, not {}", node.kind()),
            )),
        }
    }

    fn map<'n>(&self, node: &'n Node, at: &str) -> Result<&'n [(Key, Node)], Invalid> {
        node.as_map().ok_or_else(|| {
            self.invalid(
                node.line,
                at,
                format!("must be a mapping, not {}", node.kind()),
            )
        })
    }

    fn integer(&self, node: &Node, at: &str) -> Result<i64, Invalid> {
        match &node.value {
            Value::Scalar(Scalar::Int(n), _) => Ok(*n),
            Value::Scalar(Scalar::Str, _) => {
                let s = self.string(node, at)?;
                s.trim().parse().map_err(|_| {
                    self.invalid(node.line, at, format!("`{s}` is not a whole number"))
                })
            }
            _ => Err(self.invalid(
                node.line,
                at,
                format!("must be a whole number, not {}", node.kind()),
            )),
        }
    }

    fn boolean(&self, node: &Node, at: &str) -> Result<bool, Invalid> {
        match &node.value {
            Value::Scalar(Scalar::Bool(b), _) => Ok(*b),
            _ => Err(self.invalid(
                node.line,
                at,
                format!("must be true or false, not {}", node.kind()),
            )),
        }
    }

    /// `command` and `entrypoint`: a list of words, or a string split as
    /// Compose splits it. Empty (`~`) means not given.
    fn words(&self, node: &Node, at: &str) -> Result<Option<Vec<String>>, Invalid> {
        match &node.value {
            Value::Null => Ok(None),
            Value::Seq(items) => items
                .iter()
                .enumerate()
                .map(|(i, n)| self.string(n, &format!("{at}[{i}]")))
                .collect::<Result<_, _>>()
                .map(Some),
            Value::Scalar(..) => {
                let s = self.string(node, at)?;
                split_words(&s)
                    .map(Some)
                    .map_err(|m| self.invalid(node.line, at, m))
            }
            Value::Map(_) => Err(self.invalid(
                node.line,
                at,
                "must be a string or a list of strings, not a mapping",
            )),
        }
    }

    fn service(
        &self,
        name: &Key,
        node: &Node,
        volumes: &BTreeSet<String>,
        lines: &mut Lines,
    ) -> Result<Service, Invalid> {
        let at = format!("services.{}", name.name);
        check_service_name(&name.name).map_err(|m| self.invalid(name.line, &at, m))?;
        let map = self.map(node, &at)?;
        self.check_keys(map, SERVICE_KEYS, &at, "service", true)?;
        lines.service.insert(name.name.clone(), name.line);

        let Some((_, image)) = find(map, "image") else {
            return Err(self.invalid(
                name.line,
                format!("{at}.image"),
                "missing: every service names the image it runs (`image: nginx:alpine`)",
            ));
        };
        let image_at = format!("{at}.image");
        let image_text = self.string(image, &image_at)?;
        let image: Reference =
            image_text
                .parse()
                .map_err(|e: crate::reference::ReferenceError| {
                    self.invalid(image.line, &image_at, e.to_string())
                })?;

        let mut s = Service {
            name: name.name.clone(),
            image,
            command: None,
            entrypoint: None,
            environment: BTreeMap::new(),
            ports: Vec::new(),
            volumes: Vec::new(),
            depends_on: BTreeMap::new(),
            restart: Restart::No,
            user: None,
            working_dir: None,
            healthcheck: None,
            mem_limit: None,
            millicpus: None,
            pids_limit: None,
        };
        for (k, v) in map {
            let at = format!("{at}.{}", k.name);
            match k.name.as_str() {
                "command" => s.command = self.words(v, &at)?,
                "entrypoint" => s.entrypoint = self.words(v, &at)?,
                "environment" => s.environment = self.environment(v, &at)?,
                "ports" => {
                    let items = self.list(v, &at)?;
                    for (i, item) in items.iter().enumerate() {
                        let port = self.port(item, &format!("{at}[{i}]"))?;
                        if s.ports.contains(&port) {
                            return Err(self.invalid(
                                item.line,
                                format!("{at}[{i}]"),
                                format!("`{port}` is listed twice"),
                            ));
                        }
                        s.ports.push(port);
                        lines
                            .ports
                            .entry(s.name.clone())
                            .or_default()
                            .push(item.line);
                    }
                }
                "volumes" => {
                    let items = self.list(v, &at)?;
                    for (i, item) in items.iter().enumerate() {
                        let item_at = format!("{at}[{i}]");
                        let mount = self.mount(item, &item_at, volumes)?;
                        if s.volumes.iter().any(|m| m.target == mount.target) {
                            return Err(self.invalid(
                                item.line,
                                item_at,
                                format!("two volumes are mounted at {}", mount.target),
                            ));
                        }
                        s.volumes.push(mount);
                    }
                }
                "depends_on" => {
                    s.depends_on = self.depends_on(v, &at, &s.name, lines)?;
                }
                "restart" => s.restart = self.restart(v, &at)?,
                "user" => {
                    let u = self.string(v, &at)?;
                    if u.is_empty() || u.contains(char::is_whitespace) || u.contains('\0') {
                        return Err(self.invalid(
                            v.line,
                            at,
                            format!("`{u}` is not a user: write USER, UID, USER:GROUP or UID:GID"),
                        ));
                    }
                    s.user = Some(u);
                }
                "working_dir" => {
                    let w = self.string(v, &at)?;
                    check_container_path(&w).map_err(|m| self.invalid(v.line, at, m))?;
                    s.working_dir = Some(w);
                }
                "healthcheck" => s.healthcheck = Some(self.healthcheck(v, &at)?),
                "mem_limit" => s.mem_limit = Some(self.mem_limit(v, &at)?),
                "cpus" => s.millicpus = Some(self.cpus(v, &at)?),
                "pids_limit" => {
                    let n = self.integer(v, &at)?;
                    s.pids_limit = match n {
                        -1 | 0 => None,
                        n if n > 0 => Some(n),
                        _ => {
                            return Err(self.invalid(
                                v.line,
                                at,
                                format!("`{n}` is not a limit: give a positive number of processes, or -1 for none"),
                            ))
                        }
                    };
                }
                _ => {} // image, extensions
            }
        }
        Ok(s)
    }

    fn list<'n>(&self, node: &'n Node, at: &str) -> Result<&'n [Node], Invalid> {
        match &node.value {
            Value::Seq(items) => Ok(items),
            Value::Null => Ok(&[]),
            _ => Err(self.invalid(
                node.line,
                at,
                format!("must be a list, not {}", node.kind()),
            )),
        }
    }

    fn environment(&self, node: &Node, at: &str) -> Result<BTreeMap<String, String>, Invalid> {
        let mut env = BTreeMap::new();
        let no_value = |name: &str| {
            format!(
                "`{name}` has no value: Berth does not pass its own environment to apps; \
                 give it one (`{name}=value`, or `{name}: value`)"
            )
        };
        match &node.value {
            Value::Null => {}
            Value::Map(entries) => {
                for (k, v) in entries {
                    let at = format!("{at}.{}", k.name);
                    check_env_name(&k.name).map_err(|m| self.invalid(k.line, &at, m))?;
                    if v.value == Value::Null {
                        return Err(self.invalid(v.line, at, no_value(&k.name)));
                    }
                    let value = self.string(v, &at)?;
                    check_env_value(&value).map_err(|m| self.invalid(v.line, &at, m))?;
                    env.insert(k.name.clone(), value);
                }
            }
            Value::Seq(items) => {
                for (i, item) in items.iter().enumerate() {
                    let at = format!("{at}[{i}]");
                    let entry = self.string(item, &at)?;
                    let Some((k, v)) = entry.split_once('=') else {
                        return Err(self.invalid(item.line, at, no_value(&entry)));
                    };
                    check_env_name(k).map_err(|m| self.invalid(item.line, &at, m))?;
                    check_env_value(v).map_err(|m| self.invalid(item.line, &at, m))?;
                    if env.insert(k.to_string(), v.to_string()).is_some() {
                        return Err(self.invalid(item.line, at, format!("`{k}` is set twice")));
                    }
                }
            }
            _ => {
                return Err(self.invalid(
                    node.line,
                    at,
                    format!(
                        "must be a mapping (`KEY: value`) or a list (`- KEY=value`), not {}",
                        node.kind()
                    ),
                ))
            }
        }
        Ok(env)
    }

    fn port(&self, node: &Node, at: &str) -> Result<Port, Invalid> {
        match &node.value {
            Value::Scalar(Scalar::Int(n), _) => Ok(Port {
                target: port_number(&n.to_string()).map_err(|m| self.invalid(node.line, at, m))?,
                published: None,
                host_ip: None,
                protocol: Protocol::Tcp,
            }),
            Value::Scalar(Scalar::Str, _) => {
                let s = self.string(node, at)?;
                parse_port(&s).map_err(|m| self.invalid(node.line, at, m))
            }
            Value::Map(entries) => {
                self.check_keys(entries, PORT_KEYS, at, "port", false)?;
                let Some((_, target)) = find(entries, "target") else {
                    return Err(self.invalid(
                        node.line,
                        format!("{at}.target"),
                        "missing: `target` is the port in the container",
                    ));
                };
                let number = |n: &Node, at: &str| -> Result<u16, Invalid> {
                    let s = self.string(n, at)?;
                    port_number(&s).map_err(|m| self.invalid(n.line, at, m))
                };
                let mut port = Port {
                    target: number(target, &format!("{at}.target"))?,
                    published: None,
                    host_ip: None,
                    protocol: Protocol::Tcp,
                };
                for (k, v) in entries {
                    let at = format!("{at}.{}", k.name);
                    match k.name.as_str() {
                        "published" if v.value != Value::Null => {
                            port.published = Some(number(v, &at)?)
                        }
                        "host_ip" => {
                            let ip = self.string(v, &at)?;
                            port.host_ip = Some(
                                parse_ip(ip.trim_start_matches('[').trim_end_matches(']'))
                                    .map_err(|m| self.invalid(v.line, &at, m))?,
                            );
                        }
                        "protocol" => {
                            let p = self.string(v, &at)?;
                            port.protocol =
                                parse_protocol(&p).map_err(|m| self.invalid(v.line, &at, m))?;
                        }
                        _ => {}
                    }
                }
                Ok(port)
            }
            _ => Err(self.invalid(
                node.line,
                at,
                format!(
                    "must be a string like \"8080:80\" or a mapping with `target`, not {}",
                    node.kind()
                ),
            )),
        }
    }

    fn mount(&self, node: &Node, at: &str, declared: &BTreeSet<String>) -> Result<Mount, Invalid> {
        let line = node.line;
        let mount = match &node.value {
            Value::Scalar(..) => {
                let s = self.string(node, at)?;
                parse_mount(&s).map_err(|m| self.invalid(line, at, m))?
            }
            Value::Map(entries) => {
                self.check_keys(entries, MOUNT_KEYS, at, "volume", false)?;
                let mut source = None;
                let mut target = None;
                let mut read_only = false;
                let mut kind = "volume".to_string();
                for (k, v) in entries {
                    let at = format!("{at}.{}", k.name);
                    match k.name.as_str() {
                        "type" => kind = self.string(v, &at)?,
                        "source" => source = Some(self.string(v, &at)?),
                        "target" => target = Some(self.string(v, &at)?),
                        "read_only" => read_only = self.boolean(v, &at)?,
                        _ => {}
                    }
                }
                match kind.as_str() {
                    "volume" => {}
                    "bind" => {
                        let s = source.unwrap_or_default();
                        return Err(self.invalid(line, at, bind_refused(&s)));
                    }
                    other => {
                        return Err(self.invalid(
                            line,
                            format!("{at}.type"),
                            format!("`{other}` mounts are not supported: use `type: volume` with a named volume"),
                        ))
                    }
                }
                let Some(target) = target else {
                    return Err(self.invalid(
                        line,
                        format!("{at}.target"),
                        "missing: the path in the container",
                    ));
                };
                let Some(source) = source.filter(|s| !s.is_empty()) else {
                    return Err(self.invalid(line, at, anonymous_refused(&target)));
                };
                if source.starts_with(['/', '.', '~']) {
                    return Err(self.invalid(line, at, bind_refused(&source)));
                }
                check_volume_name(&source).map_err(|m| self.invalid(line, at, m))?;
                check_container_path(&target).map_err(|m| self.invalid(line, at, m))?;
                Mount {
                    source,
                    target,
                    read_only,
                }
            }
            _ => {
                return Err(self.invalid(
                    line,
                    at,
                    format!(
                        "must be a string like \"data:/var/lib/app\" or a mapping, not {}",
                        node.kind()
                    ),
                ))
            }
        };
        if !declared.contains(&mount.source) {
            return Err(self.invalid(
                line,
                at,
                format!(
                    "the volume `{0}` is not declared: add it to the top-level volumes \
                     (`volumes:` then `  {0}: {{}}`)",
                    mount.source
                ),
            ));
        }
        Ok(mount)
    }

    fn depends_on(
        &self,
        node: &Node,
        at: &str,
        service: &str,
        lines: &mut Lines,
    ) -> Result<BTreeMap<String, Condition>, Invalid> {
        let mut deps = BTreeMap::new();
        let mut add = |name: String, condition, line, at: &str| {
            if deps.insert(name.clone(), condition).is_some() {
                return Err(self.invalid(line, at, format!("`{name}` is listed twice")));
            }
            lines.depends.insert((service.to_string(), name), line);
            Ok(())
        };
        match &node.value {
            Value::Null => {}
            Value::Seq(items) => {
                for (i, item) in items.iter().enumerate() {
                    let at = format!("{at}[{i}]");
                    let name = self.string(item, &at)?;
                    add(name, Condition::Started, item.line, &at)?;
                }
            }
            Value::Map(entries) => {
                for (k, v) in entries {
                    let at = format!("{at}.{}", k.name);
                    let condition = match &v.value {
                        Value::Null => Condition::Started,
                        Value::Map(m) => {
                            self.check_keys(m, DEPENDS_KEYS, &at, "depends_on", false)?;
                            match find(m, "condition") {
                                None => Condition::Started,
                                Some((_, c)) => {
                                    let c_at = format!("{at}.condition");
                                    match self.string(c, &c_at)?.as_str() {
                                        "service_started" => Condition::Started,
                                        "service_healthy" => Condition::Healthy,
                                        other => {
                                            return Err(self.invalid(
                                                c.line,
                                                c_at,
                                                format!(
                                                    "`{other}` is not supported: use service_started or service_healthy"
                                                ),
                                            ))
                                        }
                                    }
                                }
                            }
                        }
                        _ => {
                            return Err(self.invalid(
                                v.line,
                                at,
                                format!(
                                "must be a mapping like `{{ condition: service_healthy }}`, not {}",
                                v.kind()
                            ),
                            ))
                        }
                    };
                    add(k.name.clone(), condition, k.line, &at)?;
                }
            }
            _ => {
                return Err(self.invalid(
                    node.line,
                    at,
                    format!(
                        "must be a list of service names or a mapping, not {}",
                        node.kind()
                    ),
                ))
            }
        }
        Ok(deps)
    }

    fn restart(&self, node: &Node, at: &str) -> Result<Restart, Invalid> {
        if let Value::Scalar(Scalar::Bool(false), _) = node.value {
            return Ok(Restart::No);
        }
        let s = self.string(node, at)?;
        let bad = || {
            self.invalid(
                node.line,
                at,
                format!(
                    "`{s}` is not a restart policy: use no, always, unless-stopped, on-failure or on-failure:N"
                ),
            )
        };
        Ok(match s.as_str() {
            "no" => Restart::No,
            "always" => Restart::Always,
            "unless-stopped" => Restart::UnlessStopped,
            "on-failure" => Restart::OnFailure(None),
            other => match other.strip_prefix("on-failure:") {
                Some(n) => Restart::OnFailure(Some(n.parse().map_err(|_| bad())?)),
                None => return Err(bad()),
            },
        })
    }

    fn healthcheck(&self, node: &Node, at: &str) -> Result<Healthcheck, Invalid> {
        let map = self.map(node, at)?;
        self.check_keys(map, HEALTHCHECK_KEYS, at, "healthcheck", false)?;
        let mut h = Healthcheck::default();
        let mut disable = false;
        for (k, v) in map {
            let at = format!("{at}.{}", k.name);
            let duration = |n: &Node| -> Result<Duration, Invalid> {
                if let Value::Scalar(Scalar::Int(_) | Scalar::Float(_), t) = &n.value {
                    return Err(self.invalid(
                        n.line,
                        &at,
                        format!("`{t}` has no unit: write a duration such as {t}s or 1m30s"),
                    ));
                }
                let s = self.string(n, &at)?;
                parse_duration(&s).map_err(|m| self.invalid(n.line, &at, m))
            };
            match k.name.as_str() {
                "test" => h.test = Some(self.health_test(v, &at)?),
                "interval" => h.interval = Some(duration(v)?),
                "timeout" => h.timeout = Some(duration(v)?),
                "start_period" => h.start_period = Some(duration(v)?),
                "start_interval" => h.start_interval = Some(duration(v)?),
                "retries" => {
                    let n = self.integer(v, &at)?;
                    h.retries = Some(u32::try_from(n).map_err(|_| {
                        self.invalid(v.line, &at, format!("`{n}` is not a number of retries"))
                    })?);
                }
                "disable" => disable = self.boolean(v, &at)?,
                _ => {}
            }
        }
        if disable {
            if h.test.as_ref().is_some_and(|t| *t != HealthTest::Disabled) {
                return Err(self.invalid(
                    node.line,
                    at,
                    "has both `disable: true` and a `test`: keep one",
                ));
            }
            h.test = Some(HealthTest::Disabled);
        }
        Ok(h)
    }

    fn health_test(&self, node: &Node, at: &str) -> Result<HealthTest, Invalid> {
        let words: Vec<String> = match &node.value {
            Value::Scalar(..) => {
                let s = self.string(node, at)?;
                if s.trim().is_empty() {
                    return Err(self.invalid(node.line, at, "is empty"));
                }
                return Ok(HealthTest::Shell(s));
            }
            Value::Seq(items) => items
                .iter()
                .enumerate()
                .map(|(i, n)| self.string(n, &format!("{at}[{i}]")))
                .collect::<Result<_, _>>()?,
            _ => {
                return Err(self.invalid(
                    node.line,
                    at,
                    format!(
                        "must be a list like [\"CMD\", \"curl\", \"-f\", \"http://localhost\"] or a string, not {}",
                        node.kind()
                    ),
                ))
            }
        };
        match words.split_first() {
            Some((first, rest)) if first == "CMD" && !rest.is_empty() => {
                Ok(HealthTest::Cmd(rest.to_vec()))
            }
            Some((first, [command])) if first == "CMD-SHELL" => {
                Ok(HealthTest::Shell(command.clone()))
            }
            Some((first, [])) if first == "NONE" => Ok(HealthTest::Disabled),
            _ => Err(self.invalid(
                node.line,
                at,
                "must be [\"CMD\", program, args…], [\"CMD-SHELL\", \"command\"] or [\"NONE\"]",
            )),
        }
    }

    fn mem_limit(&self, node: &Node, at: &str) -> Result<u64, Invalid> {
        let bytes = match &node.value {
            Value::Scalar(Scalar::Int(n), t) => u64::try_from(*n)
                .map_err(|_| self.invalid(node.line, at, format!("`{t}` is not a memory size")))?,
            Value::Scalar(Scalar::Str, _) => {
                let s = self.string(node, at)?;
                parse_bytes(&s).map_err(|m| self.invalid(node.line, at, m))?
            }
            _ => {
                return Err(self.invalid(
                    node.line,
                    at,
                    format!("must be a size such as 256m or 1g, not {}", node.kind()),
                ))
            }
        };
        if bytes < 6 << 20 {
            return Err(self.invalid(node.line, at, "is too small: the minimum is 6m (6 MiB)"));
        }
        Ok(bytes)
    }

    fn cpus(&self, node: &Node, at: &str) -> Result<u64, Invalid> {
        let s = match &node.value {
            Value::Scalar(Scalar::Bool(_), _) | Value::Null | Value::Seq(_) | Value::Map(_) => {
                return Err(self.invalid(
                    node.line,
                    at,
                    format!("must be a number of CPUs such as 0.5, not {}", node.kind()),
                ))
            }
            _ => self.string(node, at)?,
        };
        let v: f64 = s.trim().parse().map_err(|_| {
            self.invalid(
                node.line,
                at,
                format!("`{s}` is not a number of CPUs: write one such as 0.5 or 2"),
            )
        })?;
        if !(v.is_finite() && (0.01..=1024.0).contains(&v)) {
            return Err(self.invalid(
                node.line,
                at,
                format!("`{s}` is out of range: give 0.01 to 1024 CPUs"),
            ));
        }
        Ok((v * 1000.0).round() as u64)
    }

    fn check_dependencies(&self, file: &ComposeFile, lines: &Lines) -> Result<(), Invalid> {
        for s in file.services.values() {
            for (dep, condition) in &s.depends_on {
                let line = lines.depends[&(s.name.clone(), dep.clone())];
                let at = format!("services.{}.depends_on", s.name);
                if *dep == s.name {
                    return Err(self.invalid(line, at, "a service cannot depend on itself"));
                }
                let Some(target) = file.services.get(dep) else {
                    return Err(self.invalid(
                        line,
                        at,
                        format!(
                            "there is no service `{dep}` (services: {})",
                            file.services.keys().cloned().collect::<Vec<_>>().join(", ")
                        ),
                    ));
                };
                if *condition == Condition::Healthy
                    && !target
                        .healthcheck
                        .as_ref()
                        .is_some_and(Healthcheck::has_test)
                {
                    return Err(self.invalid(
                        line,
                        format!("{at}.{dep}"),
                        format!(
                            "waits for `{dep}` to be healthy, but `{dep}` has no healthcheck with a test: \
                             give it one (services.{dep}.healthcheck.test), or wait for service_started"
                        ),
                    ));
                }
            }
        }
        if let Some(cycle) = find_cycle(file) {
            let first = &cycle[0];
            return Err(self.invalid(
                lines.depends[&(first.clone(), cycle[1].clone())],
                format!("services.{first}.depends_on"),
                format!(
                    "the services depend on each other in a circle: {}; remove one of these dependencies",
                    cycle.join(" → ")
                ),
            ));
        }
        Ok(())
    }

    fn check_port_conflicts(&self, file: &ComposeFile, lines: &Lines) -> Result<(), Invalid> {
        let mut seen: Vec<(&str, &Port)> = Vec::new();
        for s in file.services.values() {
            for (i, p) in s.ports.iter().enumerate() {
                let Some(published) = p.published else {
                    continue;
                };
                let clash = seen.iter().find(|(_, q)| {
                    q.published == Some(published)
                        && q.protocol == p.protocol
                        && match (p.host_ip, q.host_ip) {
                            (Some(a), Some(b)) => a == b,
                            _ => true,
                        }
                });
                if let Some((other, _)) = clash {
                    return Err(self.invalid(
                        lines.ports[&s.name][i],
                        format!("services.{}.ports[{i}]", s.name),
                        format!(
                            "host port {published}/{} is also published by service `{other}`",
                            p.protocol
                        ),
                    ));
                }
                seen.push((&s.name, p));
            }
        }
        Ok(())
    }
}

/// A cycle in `depends_on`, as the names along it with the first repeated
/// at the end (`a → b → a`); the lexically first such cycle.
fn find_cycle(file: &ComposeFile) -> Option<Vec<String>> {
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        New,
        Active,
        Done,
    }
    fn visit<'a>(
        file: &'a ComposeFile,
        name: &'a str,
        marks: &mut BTreeMap<&'a str, Mark>,
        path: &mut Vec<&'a str>,
    ) -> Option<Vec<String>> {
        marks.insert(name, Mark::Active);
        path.push(name);
        for dep in file.services[name].depends_on.keys() {
            if !file.services.contains_key(dep) {
                continue;
            }
            match marks.get(dep.as_str()).copied().unwrap_or(Mark::New) {
                Mark::Active => {
                    let start = path.iter().position(|n| *n == dep).unwrap_or(0);
                    let mut cycle: Vec<String> =
                        path[start..].iter().map(|s| s.to_string()).collect();
                    cycle.push(dep.clone());
                    return Some(cycle);
                }
                Mark::New => {
                    if let Some(c) = visit(file, dep, marks, path) {
                        return Some(c);
                    }
                }
                Mark::Done => {}
            }
        }
        path.pop();
        marks.insert(name, Mark::Done);
        None
    }
    let mut marks = BTreeMap::new();
    for name in file.services.keys() {
        if marks.get(name.as_str()).copied().unwrap_or(Mark::New) == Mark::New {
            if let Some(c) = visit(file, name, &mut marks, &mut Vec::new()) {
                return Some(c);
            }
        }
    }
    None
}

fn top_level_hint(key: &str) -> Option<&'static str> {
    Some(match key {
        "networks" => "the services of an app share one network and reach each other by service name; remove it",
        "configs" | "secrets" => "use `environment` or a named volume",
        "include" | "extends" => "put the whole app in this one file",
        _ => return None,
    })
}

fn service_hint(key: &str) -> Option<&'static str> {
    Some(match key {
        "build" => "Berth installs published images and builds none; name one with `image`",
        "container_name" | "hostname" | "domainname" => {
            "Berth names each container after its app and service"
        }
        "networks" | "network_mode" | "links" | "external_links" | "extra_hosts" | "dns"
        | "dns_search" | "dns_opt" | "mac_address" => {
            "the services of an app share one network and reach each other by service name; remove it"
        }
        "expose" => {
            "the services of an app reach each other on every port, and `ports` publishes ports on the host; remove it"
        }
        "privileged" | "cap_add" | "cap_drop" | "devices" | "security_opt" | "pid" | "ipc"
        | "userns_mode" | "sysctls" | "cgroup" | "cgroup_parent" | "device_cgroup_rules"
        | "group_add" | "runtime" => {
            "catalog apps run with Docker's default confinement and nothing more; remove it"
        }
        "env_file" => "write the variables under `environment`",
        "deploy" | "mem_reservation" | "memswap_limit" | "mem_swappiness" | "cpu_shares"
        | "cpu_quota" | "cpu_period" | "cpuset" | "cpu_count" | "cpu_percent" | "ulimits"
        | "oom_score_adj" | "oom_kill_disable" | "shm_size" => {
            "limit a service with `mem_limit`, `cpus` and `pids_limit`"
        }
        "secrets" | "configs" => "use `environment` or a named volume",
        "volumes_from" | "tmpfs" => "mount named volumes with `volumes`",
        "extends" => "put the whole service here",
        _ => return None,
    })
}

/// Service names are DNS labels: the other services reach a service by it.
pub fn check_service_name(name: &str) -> Result<(), String> {
    if is_dns_label(name) {
        Ok(())
    } else {
        Err(format!(
            "`{name}` is not a valid service name: use 1 to 63 lowercase letters, digits and `-`, \
             starting and ending with a letter or digit (the other services reach it by this name)"
        ))
    }
}

/// `[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?`
pub fn is_dns_label(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= 63
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
        && b[0] != b'-'
        && b[b.len() - 1] != b'-'
}

/// Docker's volume names: `[a-zA-Z0-9][a-zA-Z0-9_.-]*`, here at most 64.
pub fn check_volume_name(name: &str) -> Result<(), String> {
    let b = name.as_bytes();
    let ok = !b.is_empty()
        && b.len() <= 64
        && b[0].is_ascii_alphanumeric()
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'.' | b'-'));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "`{name}` is not a valid volume name: use up to 64 letters, digits, `_`, `.` and `-`, \
             starting with a letter or digit"
        ))
    }
}

fn check_container_path(p: &str) -> Result<(), String> {
    if !p.starts_with('/') || p.split('/').any(|c| c == "..") || p.contains('\0') {
        return Err(format!(
            "`{p}` must be an absolute path in the container, without `..`"
        ));
    }
    if p.trim_end_matches('/').is_empty() {
        return Err("a volume cannot be mounted over the container's `/`".into());
    }
    Ok(())
}

fn check_env_name(k: &str) -> Result<(), String> {
    if k.is_empty() || k.contains(['=', '\0']) || k.contains(char::is_whitespace) {
        Err(format!(
            "`{k}` is not a valid variable name (not empty, no `=` or spaces)"
        ))
    } else {
        Ok(())
    }
}

fn check_env_value(v: &str) -> Result<(), String> {
    if v.contains('\0') {
        Err("a value cannot contain a NUL character".into())
    } else {
        Ok(())
    }
}

fn bind_refused(source: &str) -> String {
    format!(
        "`{source}` is a host path: catalog apps may only use named volumes, since installing an \
         app must not touch the host's files. Name a volume instead (`data:/path`) and declare \
         it under the top-level `volumes`"
    )
}

fn anonymous_refused(target: &str) -> String {
    format!(
        "the volume at `{target}` has no name: name it (`data:{target}`) and declare it under \
         the top-level `volumes`, so it is kept and removed with the app"
    )
}

/// `NAME:/path[:ro|rw]` (short volume syntax).
fn parse_mount(s: &str) -> Result<Mount, String> {
    let parts: Vec<&str> = s.split(':').collect();
    let (source, target, mode) = match parts.as_slice() {
        [target] => return Err(anonymous_refused(target)),
        [source, target] => (*source, *target, None),
        [source, target, mode] => (*source, *target, Some(*mode)),
        _ => {
            return Err(format!(
                "`{s}` is not a volume: write NAME:/path or NAME:/path:ro"
            ))
        }
    };
    if source.is_empty() {
        return Err(anonymous_refused(target));
    }
    if source.starts_with(['/', '.', '~']) {
        return Err(bind_refused(source));
    }
    check_volume_name(source)?;
    check_container_path(target)?;
    let read_only = match mode {
        None | Some("rw") => false,
        Some("ro") => true,
        Some(other) => {
            return Err(format!(
                "`{s}`: the mode `{other}` is not supported (use ro or rw)"
            ))
        }
    };
    Ok(Mount {
        source: source.to_string(),
        target: target.to_string(),
        read_only,
    })
}

/// Short port syntax: `80`, `8080:80`, `127.0.0.1:8080:80`, `127.0.0.1::80`,
/// `[::1]:8080:80`, each with an optional `/tcp` or `/udp`.
fn parse_port(s: &str) -> Result<Port, String> {
    let (rest, protocol) = match s.rsplit_once('/') {
        Some((r, p)) => (r, parse_protocol(p)?),
        None => (s, Protocol::Tcp),
    };
    if rest.contains('-') {
        return Err(format!(
            "`{s}`: port ranges are not supported; list each port"
        ));
    }
    let (host_ip, rest) = if let Some(after) = rest.strip_prefix('[') {
        let (ip, after) = after
            .split_once("]:")
            .ok_or_else(|| format!("`{s}` is not a port: write [IPV6]:PUBLISHED:TARGET"))?;
        (Some(parse_ip(ip)?), after)
    } else {
        match rest.matches(':').count() {
            0 | 1 => (None, rest),
            2 => {
                let (ip, after) = rest.split_once(':').unwrap_or_default();
                (Some(parse_ip(ip)?), after)
            }
            _ => {
                return Err(format!(
                    "`{s}` is not a port: write IPv6 addresses in brackets, [::1]:8080:80"
                ))
            }
        }
    };
    let (published, target) = match rest.split_once(':') {
        Some(("", t)) if host_ip.is_some() => (None, t),
        Some((p, t)) => (Some(port_number(p)?), t),
        None if host_ip.is_some() => {
            return Err(format!("`{s}` is not a port: write IP:PUBLISHED:TARGET"))
        }
        None => (None, rest),
    };
    Ok(Port {
        target: port_number(target)?,
        published,
        host_ip,
        protocol,
    })
}

fn port_number(s: &str) -> Result<u16, String> {
    match s.trim().parse::<u32>() {
        Ok(n) if (1..=65535).contains(&n) => Ok(n as u16),
        Ok(n) => Err(format!("port {n} is out of range: ports are 1 to 65535")),
        Err(_) => Err(format!(
            "`{s}` is not a port number: ports are 1 to 65535 (write \"8080:80\" for host port 8080 to container port 80)"
        )),
    }
}

fn parse_ip(s: &str) -> Result<IpAddr, String> {
    s.parse()
        .map_err(|_| format!("`{s}` is not an IP address (such as 127.0.0.1 or ::1)"))
}

fn parse_protocol(s: &str) -> Result<Protocol, String> {
    match s {
        "tcp" => Ok(Protocol::Tcp),
        "udp" => Ok(Protocol::Udp),
        other => Err(format!(
            "the protocol `{other}` is not supported: use tcp or udp"
        )),
    }
}

/// Compose's durations (Go's): numbers with units, `10s`, `1m30s`,
/// `1.5h`, `500ms`, `100us`, `0`.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let bad = || {
        format!("`{s}` is not a duration: write a number with a unit (h, m, s, ms, us, ns), such as 10s or 1m30s")
    };
    let t = s.trim();
    if t == "0" {
        return Ok(Duration::ZERO);
    }
    if t.is_empty() {
        return Err(bad());
    }
    let mut total = 0f64;
    let mut rest = t;
    while !rest.is_empty() {
        let num_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(bad)?;
        if num_len == 0 {
            return Err(bad());
        }
        let n: f64 = rest[..num_len].parse().map_err(|_| bad())?;
        rest = &rest[num_len..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let seconds = match &rest[..unit_len] {
            "h" => 3600.0,
            "m" => 60.0,
            "s" => 1.0,
            "ms" => 1e-3,
            "us" | "µs" => 1e-6,
            "ns" => 1e-9,
            _ => return Err(bad()),
        };
        total += n * seconds;
        rest = &rest[unit_len..];
    }
    if !total.is_finite() || total > 1e9 {
        return Err(bad());
    }
    Ok(Duration::from_secs_f64(total))
}

/// Docker's sizes: `256m`, `1g`, `1gb`, `512k`, `1.5g`, `100b`, `1048576`,
/// powers of 1024, case-insensitive.
pub fn parse_bytes(s: &str) -> Result<u64, String> {
    let bad = || {
        format!("`{s}` is not a memory size: write a number with an optional unit b, k, m, g or t (such as 256m or 1g)")
    };
    let t = s.trim().to_ascii_lowercase();
    let num_len = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(num_len);
    let unit = unit.trim_start();
    let unit = unit.strip_suffix('b').unwrap_or(unit);
    let unit = unit.strip_suffix('i').unwrap_or(unit);
    let mult: f64 = match unit {
        "" => 1.0,
        "k" => 1024.0,
        "m" => 1024.0 * 1024.0,
        "g" => 1024.0 * 1024.0 * 1024.0,
        "t" => 1024f64.powi(4),
        _ => return Err(bad()),
    };
    let n: f64 = num.parse().map_err(|_| bad())?;
    let bytes = n * mult;
    if !bytes.is_finite() || bytes >= u64::MAX as f64 {
        return Err(bad());
    }
    Ok(bytes as u64)
}

/// Split a `command` string into words as Compose does (go-shellwords):
/// blanks separate words; `'…'` keeps everything; `"…"` keeps blanks;
/// `\` outside single quotes makes the next character literal; no
/// variables, globs or operators. An unquoted `;`, `&`, `|`, `<` or `>` is
/// refused (Compose would silently drop the rest), pointing at `sh -c`.
pub fn split_words(s: &str) -> Result<Vec<String>, String> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut in_word = false;
    let (mut single, mut double, mut escaped) = (false, false, false);
    for c in s.chars() {
        if escaped {
            word.push(c);
            escaped = false;
            in_word = true;
            continue;
        }
        match c {
            '\\' if !single => escaped = true,
            '\'' if !double => {
                single = !single;
                in_word = true;
            }
            '"' if !single => {
                double = !double;
                in_word = true;
            }
            c if c.is_whitespace() && !single && !double => {
                if in_word {
                    words.push(std::mem::take(&mut word));
                    in_word = false;
                }
            }
            ';' | '&' | '|' | '<' | '>' if !single && !double => {
                return Err(format!(
                    "`{s}` uses the shell operator `{c}`, which Compose does not run a shell for: \
                     write the command as a list, [\"sh\", \"-c\", \"…\"]"
                ));
            }
            c => {
                word.push(c);
                in_word = true;
            }
        }
    }
    if single || double || escaped {
        return Err(format!(
            "`{s}` has an unterminated quote or a trailing `\\`"
        ));
    }
    if in_word {
        words.push(word);
    }
    Ok(words)
}

#[cfg(test)]
mod tests;
