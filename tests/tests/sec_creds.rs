//! Registry logins are per user, and never travel in clear (issue 11,
//! "Registry credentials"), end to end: real registries (htpasswd with two
//! accounts; token auth, its token server on loopback or on another address
//! of this machine), a private bus with the project's policy, a real berthd
//! as root, and a throwaway user who is a member of that berthd's access
//! group (polkit does not run on the private bus, so the group grants every
//! action, as "group berth" does where polkit is absent).
//!
//! Before the fix, berthd kept one `auth.json` keyed by host: every pull,
//! `run`, install and update used whatever login anyone had stored for the
//! host, a member's logout removed root's login, and a token realm or a
//! redirect over plain HTTP got the login in clear. Each test below fails on
//! that berthd at the step its comment names.
//!
//! Every test runs on a [`DemoEnv`] of its own (its drop uninstalls apps and
//! removes containers, also after a failure); registries, users and temp
//! dirs are removed when their guards drop.

use std::fs::File;
use std::net::{IpAddr, Ipv4Addr};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::Duration;

use base64::Engine as _;
use berth_testkit::fsutil::TestDir;
use berth_testkit::image::push_demo_images;
use berth_testkit::proc::ChildGuard;
use berth_testkit::registry::{TOKEN_PASSWORD, TOKEN_USER};
use berth_testkit::users::TestUser;
use berth_testkit::{require, BerthdConfig, CliOutput, DemoEnv, ImageBuilder, Layer, Registry};

/// root's account on the htpasswd registry.
const ROOT_ACCOUNT: (&str, &str) = ("root-account", "root-secret");
/// The member's own, different account there.
const MEMBER_ACCOUNT: (&str, &str) = ("member-account", "member-secret");

/// An app on the private registry's copy of the demo web image.
const PRIVATE_WEB: &str = "services:\n\
     \x20 web:\n\
     \x20   image: ${BERTH_DEMO_REGISTRY}/demo/web:latest\n\
     \x20   ports:\n\
     \x20     - \"8080\"\n";

/// Root and the tools these tests start; false (after saying why, or a
/// panic under `scripts/test.sh`) when one is missing.
fn prerequisites() -> bool {
    require::root("the registry login tests")
        && require::tool("/usr/bin/docker-registry", "docker-registry")
        && require::tool("/usr/bin/htpasswd", "apache2-utils")
        && require::tool("/usr/bin/setpriv", "util-linux")
        && require::tool("/usr/sbin/useradd", "passwd")
}

/// A registry behind htpasswd with root's and the member's accounts, holding
/// the demo images (pushed with root's account).
fn private_registry() -> Registry {
    let registry = Registry::start_with_htpasswd_users(&[ROOT_ACCOUNT, MEMBER_ACCOUNT])
        .expect("an htpasswd registry");
    push_demo_images(&registry.client()).expect("pushing the demo images");
    registry
}

/// A berthd with the demo catalog on `registry` and `config`; with `member`,
/// that user's own group is its access group.
fn start(registry: &str, config: BerthdConfig, member: Option<&TestUser>) -> DemoEnv {
    let mut env = DemoEnv::on_registry(registry).expect("a berthd with the demo catalog");
    let config = match member {
        Some(user) => config.extra(&format!("[access]\ngroup = {:?}", user.group)),
        None => config,
    };
    reconfigure(&mut env, &config);
    env
}

/// Restart berthd with `config` (same roots, so logins and catalogs stay).
fn reconfigure(env: &mut DemoEnv, config: &BerthdConfig) {
    std::fs::write(env.berthd.config_path(), config.to_toml()).expect("writing the config");
    env.berthd.restart().expect("restarting berthd");
}

/// `berth ARGS` as `who` (None: root).
fn berth(env: &DemoEnv, who: Option<&TestUser>, args: &[&str]) -> CliOutput {
    env.cli
        .run_as_user(who.map(TestUser::ids), args)
        .expect("running berth")
}

/// `berth login HOST -u USER --password-stdin` as `who` (None: root).
fn login(env: &DemoEnv, who: Option<&TestUser>, host: &str, account: (&str, &str)) -> CliOutput {
    let dir = TestDir::new("berth-login-").expect("a temp dir");
    std::fs::write(dir.join("password"), format!("{}\n", account.1)).unwrap();
    let as_user = who.map(TestUser::ids);
    let mut cmd = berth_testkit::bus::command(env.berthd.bus_address(), as_user, env.cli.binary());
    cmd.args(["login", host, "-u", account.0, "--password-stdin"])
        .env("NO_COLOR", "1")
        .stdin(File::open(dir.join("password")).unwrap())
        .stdout(File::create(dir.join("out")).unwrap())
        .stderr(File::create(dir.join("err")).unwrap());
    if as_user.is_some() {
        cmd.env("HOME", "/nonexistent");
    }
    let child = ChildGuard::spawn("berth login", cmd).expect("starting berth login");
    let status = child
        .wait_timeout(Duration::from_secs(60))
        .expect("waiting for berth login")
        .expect("berth login did not finish within 60 s");
    let read = |name: &str| std::fs::read_to_string(dir.join(name)).unwrap_or_default();
    CliOutput {
        status,
        stdout: read("out"),
        stderr: read("err"),
    }
}

/// `out` succeeded; else panic with what it said.
fn assert_ok(out: &CliOutput, what: &str) {
    assert!(
        out.success(),
        "{what} failed:\n{}{}",
        out.stdout,
        out.stderr
    );
}

/// `out` is the registry's refusal of a caller with no login of their own.
fn assert_refused(out: &CliOutput, host: &str, what: &str) {
    assert!(
        !out.success(),
        "{what} succeeded, with a login that is not the caller's:\n{}",
        out.stdout
    );
    let said = &out.stderr;
    assert!(
        said.contains(&format!("registry {host} refused access"))
            && said.contains(&format!("berth login {host}"))
            && said.contains("only your own is used"),
        "{what}: {said}"
    );
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .permissions()
        .mode()
        & 0o7777
}

/// An IPv4 address of this machine that is not loopback (nor link-local,
/// nor on an app bridge, which come and go with other tests).
fn non_loopback_address() -> Option<IpAddr> {
    let mut list: *mut libc::ifaddrs = std::ptr::null_mut();
    // SAFETY: getifaddrs fills `list`, freed below.
    if unsafe { libc::getifaddrs(&mut list) } != 0 {
        return None;
    }
    let mut found = None;
    let mut cur = list;
    while !cur.is_null() {
        // SAFETY: `cur` is a node of the list getifaddrs made.
        let ifa = unsafe { &*cur };
        cur = ifa.ifa_next;
        if ifa.ifa_addr.is_null() || ifa.ifa_name.is_null() {
            continue;
        }
        // SAFETY: a NUL-terminated name, and an address whose family says
        // its type.
        let name = unsafe { std::ffi::CStr::from_ptr(ifa.ifa_name) }.to_string_lossy();
        if name.starts_with("bn-") || unsafe { (*ifa.ifa_addr).sa_family } as i32 != libc::AF_INET {
            continue;
        }
        // SAFETY: AF_INET addresses are `sockaddr_in`.
        let sin = unsafe { &*(ifa.ifa_addr as *const libc::sockaddr_in) };
        let ip = Ipv4Addr::from(u32::from_be(sin.sin_addr.s_addr));
        if !ip.is_loopback() && !ip.is_link_local() && !ip.is_unspecified() {
            found = Some(IpAddr::V4(ip));
            break;
        }
    }
    // SAFETY: `list` came from getifaddrs and is freed once.
    unsafe { libc::freeifaddrs(list) };
    found
}

#[test]
fn a_members_pulls_and_runs_use_their_own_login_and_never_roots() {
    if !prerequisites() {
        return;
    }
    let registry = private_registry();
    let host = registry.host();
    let image = format!("{host}/demo/busybox:latest");
    let member = TestUser::create().expect("a test user");
    let env = start(&host, BerthdConfig::new(), Some(&member));
    let auth = env.berthd.root().join("auth");

    let out = login(&env, None, &host, ROOT_ACCOUNT);
    assert_ok(&out, "root's login");
    assert!(
        out.stdout.contains(&format!(
            "Login to {host} stored for user root; only pulls and installs you start use it"
        )),
        "{}",
        out.stdout
    );
    // Before: one <root>/auth.json for everyone.
    assert_eq!(mode(&auth), 0o700);
    assert_eq!(mode(&auth.join("0.json")), 0o600);
    let roots = std::fs::read(auth.join("0.json")).unwrap();

    // (1) Root has a login, the member none: the member's pull, and the
    // pull of a `run`, are refused (before: they used root's login).
    let run = ["run", "--rm", image.as_str(), "true"];
    assert_refused(
        &berth(&env, Some(&member), &["pull", &image]),
        &host,
        "the member's pull",
    );
    assert_refused(&berth(&env, Some(&member), &run), &host, "the member's run");
    env.ok(&["pull", &image]);
    // The image is in the store now; a pull still asks the registry.
    assert_refused(
        &berth(&env, Some(&member), &["pull", &image]),
        &host,
        "the member's pull of an image root pulled",
    );

    // (2) The member's own, different account: theirs alone.
    let out = login(&env, Some(&member), &host, MEMBER_ACCOUNT);
    assert_ok(&out, "the member's login");
    assert!(
        out.stdout
            .contains(&format!("stored for user {}", member.name)),
        "{}",
        out.stdout
    );
    let members = auth.join(format!("{}.json", member.uid));
    assert_eq!(mode(&members), 0o600);
    assert_eq!(
        std::fs::read(auth.join("0.json")).unwrap(),
        roots,
        "the member's login changed root's"
    );
    assert_ok(
        &berth(&env, Some(&member), &["pull", &image]),
        "the member's pull with their login",
    );
    env.ok(&["rmi", &image]);
    assert_ok(
        &berth(&env, Some(&member), &run),
        "the member's run (pulling) with their login",
    );

    // Their logout is theirs alone (before: it removed root's login).
    let out = berth(&env, Some(&member), &["logout", &host]);
    assert_ok(&out, "the member's logout");
    assert!(
        out.stdout.contains(&format!(
            "Removed the login of user {} for {host}",
            member.name
        )),
        "{}",
        out.stdout
    );
    assert!(!members.exists(), "{} stayed", members.display());
    assert_eq!(std::fs::read(auth.join("0.json")).unwrap(), roots);
    assert_refused(
        &berth(&env, Some(&member), &["pull", &image]),
        &host,
        "the member's pull after their logout",
    );
    let out = berth(&env, Some(&member), &["logout", &host]);
    assert!(!out.success());
    assert!(
        out.stderr
            .contains(&format!("not logged in to {host} (logins are per user)")),
        "{}",
        out.stderr
    );
    // Root's login is untouched.
    env.ok(&["rmi", &image]);
    env.ok(&["pull", &image]);
}

#[test]
fn the_token_server_sees_each_users_own_login() {
    if !prerequisites() {
        return;
    }
    let registry = Registry::start_with_token_auth().expect("a token-auth registry");
    let img = ImageBuilder::new()
        .layer(Layer::new().file("/token.txt", "through a bearer token\n"))
        .build()
        .unwrap();
    registry.push(&img, "team/app", "v1").unwrap();
    let (host, server) = (registry.host(), registry.token_server().unwrap());
    let image = format!("{host}/team/app:v1");
    let member = TestUser::create().expect("a test user");
    let env = start(&host, BerthdConfig::new(), Some(&member));

    assert_ok(
        &login(&env, None, &host, (TOKEN_USER, TOKEN_PASSWORD)),
        "root's login",
    );
    env.ok(&["pull", &image]);
    let requests = server.requests();
    assert!(
        requests
            .iter()
            .any(|r| r.starts_with(&format!("{TOKEN_USER} "))),
        "root's pull did not use root's login: {requests:?}"
    );

    // The member has no login: their pull asks for an anonymous token
    // (before: it reused the token root's login got, or root's login).
    let seen = requests.len();
    assert_ok(
        &berth(&env, Some(&member), &["pull", &image]),
        "the member's anonymous pull",
    );
    let theirs = server.requests()[seen..].to_vec();
    assert!(
        !theirs.is_empty(),
        "the member's pull fetched no token of its own: it used root's"
    );
    assert!(
        theirs.iter().all(|r| r.starts_with("anonymous ")),
        "the member's pull used someone's login: {theirs:?}"
    );
}

#[test]
fn a_members_app_install_and_update_use_their_own_login_and_never_roots() {
    if !prerequisites() {
        return;
    }
    let registry = private_registry();
    let host = registry.host();
    let member = TestUser::create().expect("a test user");
    let mut env = start(&host, BerthdConfig::new(), Some(&member));
    env.temp_catalog("private", &[("private-web", PRIVATE_WEB)])
        .expect("a catalog on the private registry");
    assert_ok(&login(&env, None, &host, ROOT_ACCOUNT), "root's login");

    // (3) Before: the install pulled with root's login and succeeded.
    let out = berth(&env, Some(&member), &["install", "private-web"]);
    assert_refused(&out, &host, "the member's install");
    assert!(env.apps().is_empty(), "a refused install is listed");
    let images = env.ok(&["images"]);
    assert!(!images.contains("demo/web"), "{images}");

    assert_ok(
        &login(&env, Some(&member), &host, MEMBER_ACCOUNT),
        "the member's login",
    );
    assert_ok(
        &berth(&env, Some(&member), &["install", "private-web"]),
        "the member's install with their login",
    );
    assert_ok(
        &berth(&env, Some(&member), &["logout", &host]),
        "the member's logout",
    );
    // An update pulls again: with the member's logins, which are gone.
    let out = berth(&env, Some(&member), &["update", "private-web"]);
    assert_refused(&out, &host, "the member's update");
    env.ok(&["update", "private-web"]);
    env.uninstall("private-web");
}

#[test]
fn a_login_never_goes_in_clear_to_a_token_realm_off_loopback() {
    if !prerequisites() {
        return;
    }
    let ip = non_loopback_address();
    if !require::prerequisite(
        ip.is_some(),
        "this machine has no IPv4 address but loopback, for a token server off loopback",
    ) {
        return;
    }
    // (4) The registry is on loopback (spoken to over plain HTTP); its
    // token realm is plain HTTP on another address of this machine, which
    // is not loopback and not listed as insecure.
    let registry = Registry::start_with_token_auth_on(ip.unwrap()).expect("a registry");
    let img = ImageBuilder::new()
        .layer(Layer::new().file("/realm.txt", "a realm off loopback\n"))
        .build()
        .unwrap();
    registry.push(&img, "team/app", "v1").unwrap();
    let (host, server) = (registry.host(), registry.token_server().unwrap());
    let (realm, image) = (server.realm(), format!("{host}/team/app:v1"));
    let mut env = start(&host, BerthdConfig::new(), None);
    let with_login = |r: &String| r.starts_with(&format!("{TOKEN_USER} "));

    assert_ok(
        &login(&env, None, &host, (TOKEN_USER, TOKEN_PASSWORD)),
        "root's login",
    );
    // The kit's push used the login; what berthd sends comes after.
    let seen = server.requests().len();
    // Before: root's login went to the realm in clear and the pull worked.
    let said = env.fails(&["pull", &image]);
    for part in [
        realm.as_str(),
        &format!("will not send your login for {host}"),
        "[registries] insecure",
        &format!("berth logout {host}"),
    ] {
        assert!(said.contains(part), "no `{part}` in: {said}");
    }
    let requests = server.requests()[seen..].to_vec();
    assert!(
        !requests.iter().any(with_login),
        "root's login went to {realm} in clear: {requests:?}"
    );

    // Without a login nothing secret goes: an anonymous pull works.
    env.ok(&["logout", &host]);
    env.ok(&["pull", &image]);
    env.ok(&["rmi", &image]);

    // Listing the realm's host as insecure is how to trust it.
    assert_ok(
        &login(&env, None, &host, (TOKEN_USER, TOKEN_PASSWORD)),
        "root's login again",
    );
    let trusted = server.addr().to_string();
    reconfigure(&mut env, &BerthdConfig::new().insecure(&trusted));
    let seen = server.requests().len();
    env.ok(&["pull", &image]);
    assert!(
        server.requests()[seen..].iter().any(with_login),
        "the login was not used once {trusted} was listed as insecure"
    );
}

#[test]
fn logins_of_an_older_berthd_become_roots() {
    if !prerequisites() {
        return;
    }
    let registry = private_registry();
    let host = registry.host();
    let image = format!("{host}/demo/busybox:latest");
    let member = TestUser::create().expect("a test user");
    let mut env = start(&host, BerthdConfig::new(), Some(&member));

    // (5) An older berthd's file: one login for the host, for everyone.
    env.berthd.stop().expect("stopping berthd");
    let root = env.berthd.root();
    let legacy = root.join("auth.json");
    let auth = base64::engine::general_purpose::STANDARD
        .encode(format!("{}:{}", ROOT_ACCOUNT.0, ROOT_ACCOUNT.1));
    std::fs::write(
        &legacy,
        format!(r#"{{"auths":{{"{host}":{{"auth":"{auth}"}}}}}}"#),
    )
    .unwrap();
    std::fs::set_permissions(&legacy, std::fs::Permissions::from_mode(0o600)).unwrap();
    env.berthd
        .restart()
        .expect("starting berthd on the old root");

    assert!(!legacy.exists(), "the old auth.json stayed");
    let roots = root.join("auth/0.json");
    assert_eq!(mode(&roots), 0o600);
    let text = std::fs::read_to_string(&roots).unwrap();
    assert!(text.contains(&host) && text.contains(&auth), "{text}");
    let log = env.berthd.log();
    assert!(
        log.contains("are now root's") && log.contains(&host),
        "no log line about the migration:\n{log}"
    );
    // Root pulls with it; the member, who could before, may not.
    env.ok(&["pull", &image]);
    assert_refused(
        &berth(&env, Some(&member), &["pull", &image]),
        &host,
        "the member's pull with the old file's login",
    );
    // And it stays root's after another restart.
    env.berthd.restart().expect("restarting berthd");
    env.ok(&["rmi", &image]);
    env.ok(&["pull", &image]);
}
