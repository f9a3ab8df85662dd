//! Issue 11, the bus: who may do what, and what a read gives away.
//!
//! Each test runs a real berthd on a private bus with the project's policy
//! and the demo catalog, and calls it as root, as `nobody` (no rights), as a
//! member of berthd's access group (a throwaway user, [`TestUser`]), and
//! through the raw API (`gdbus call`) as any client could. The polkit tests
//! run a real polkitd with the project's action file and rules written here.

use std::time::Duration;

use berth_testkit::polkit::Polkit;
use berth_testkit::proc::ChildGuard;
use berth_testkit::users::TestUser;
use berth_testkit::{BerthdConfig, DemoEnv, ImageBuilder, PrivateBus};

const NOBODY: Option<(u32, u32)> = Some((65534, 65534));
const HELPER: &str = "/org/berth/Helper1";

fn group_config(user: &TestUser) -> BerthdConfig {
    BerthdConfig::new().extra(&format!("[access]\ngroup = {:?}", user.group))
}

/// `berth ARGS` as `who`; stdout and stderr together, and whether it worked.
fn berth_as(env: &DemoEnv, who: Option<(u32, u32)>, args: &[&str]) -> (bool, String) {
    let out = env.cli.run_as_user(who, args).unwrap();
    (out.success(), format!("{}{}", out.stdout, out.stderr))
}

fn gdbus(
    env: &DemoEnv,
    who: Option<(u32, u32)>,
    object: &str,
    method: &str,
    args: &[&str],
) -> (bool, String) {
    let out = env.bus().call_berthd(who, object, method, args).unwrap();
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

/// An image whose config holds a secret (`img-s3cret`) in its environment
/// and command, pushed to the shared demo registry as `repo:tag`.
fn push_secret_image(repo: &str, tag: &str) -> String {
    let image = ImageBuilder::new()
        .layer(berth_testkit::busybox_rootfs().unwrap())
        .env("BUILD_TOKEN=img-s3cret")
        .cmd(&["serve", "--key", "img-s3cret"])
        .build()
        .unwrap();
    let registry = berth_testkit::shared::demo_registry();
    image.push(&registry.client(), repo, tag).unwrap();
    format!("{}/{repo}:{tag}", registry.host())
}

fn web_image(env: &DemoEnv) -> String {
    format!("{}/demo/web:latest", env.registry())
}

#[test]
fn reads_show_secrets_only_to_root_the_owner_and_managers() {
    let member = TestUser::create().unwrap();
    let env = DemoEnv::shared_on(PrivateBus::start().unwrap(), &group_config(&member)).unwrap();
    let me = Some(member.ids());
    let image = web_image(&env);

    // A container of root's and one of the member's, each with a secret
    // value in its environment and on its command line.
    env.ok(&[
        "run",
        "-d",
        "--name",
        "root-box",
        "-e",
        "TOKEN=root-s3cret",
        &image,
        "sleep",
        "600",
    ]);
    let (ok, said) = berth_as(
        &env,
        me,
        &[
            "run",
            "-d",
            "--name",
            "member-box",
            "-e",
            "TOKEN=member-s3cret",
            &image,
            "sleep",
            "601",
        ],
    );
    assert!(ok, "the member could not run a container: {said}");

    // A catalog variable and an app whose environment uses it.
    let dir = berth_testkit::fsutil::TestDir::new("berth-sec-catalog-").unwrap();
    let app = dir.join("vault");
    std::fs::create_dir_all(&app).unwrap();
    std::fs::write(
        app.join("app.toml"),
        "id = \"vault\"\ntitle = \"Vault\"\nversion = \"1\"\ndescription = \"A test app.\"\n\
         category = \"demo\"\nicon = \"icon.svg\"\nopen = { service = \"web\", port = 8080 }\n",
    )
    .unwrap();
    std::fs::copy(
        berth_testkit::demo::catalog().join("hello/icon.svg"),
        app.join("icon.svg"),
    )
    .unwrap();
    std::fs::write(
        app.join("compose.yaml"),
        "services:\n  web:\n    image: ${BERTH_DEMO_REGISTRY}/demo/web:latest\n    \
         environment:\n      API_KEY: ${API_KEY}\n    ports:\n      - \"127.0.0.1:18771:8080\"\n",
    )
    .unwrap();
    let set_registry = format!("BERTH_DEMO_REGISTRY={}", env.registry());
    env.ok(&[
        "catalog",
        "add",
        dir.path().to_str().unwrap(),
        "--name",
        "secrets",
        "--set",
        &set_registry,
        "--set",
        "API_KEY=var-s3cret",
    ]);
    env.install("vault", &[]);

    let secrets = ["root-s3cret", "member-s3cret", "var-s3cret", "sleep 60"];
    let leaks = |text: &str| -> Vec<&str> {
        secrets
            .iter()
            .copied()
            .filter(|s| text.contains(s))
            .collect()
    };

    // nobody: names, states and images, no values, no command lines.
    let mut seen = String::new();
    for args in [
        &["ps", "-a"][..],
        &["inspect", "root-box"],
        &["inspect", "member-box"],
        &["inspect", "vault-web-1"],
        &["apps"],
        &["inspect-app", "vault"],
        &["volume", "ls"],
    ] {
        let (ok, said) = berth_as(&env, NOBODY, args);
        assert!(
            ok,
            "nobody could not read with `berth {}`: {said}",
            args.join(" ")
        );
        seen.push_str(&said);
    }
    for method in ["ListCatalogs", "ListCatalogApps", "ListApps", "ListVolumes"] {
        let (ok, said) = gdbus(
            &env,
            NOBODY,
            HELPER,
            &format!("org.berth.Helper1.{method}"),
            &[],
        );
        assert!(ok, "{method} as nobody: {said}");
        seen.push_str(&said);
    }
    let (ok, said) = gdbus(
        &env,
        NOBODY,
        HELPER,
        "org.berth.Helper1.ListContainers",
        &["true"],
    );
    assert!(ok, "{said}");
    seen.push_str(&said);
    assert!(
        leaks(&seen).is_empty(),
        "nobody read {:?} in:\n{seen}",
        leaks(&seen)
    );
    assert!(
        seen.contains("root-box") && seen.contains("TOKEN"),
        "names are still listed: {seen}"
    );
    assert!(
        seen.contains("\"redacted\": true"),
        "redaction is not marked: {seen}"
    );
    // Catalog variables are write-only: listed by name, even for root.
    let (_, catalogs) = gdbus(&env, None, HELPER, "org.berth.Helper1.ListCatalogs", &[]);
    assert!(
        catalogs.contains("API_KEY") && !catalogs.contains("var-s3cret"),
        "{catalogs}"
    );

    // The owner sees its own container whole; in group mode a member may
    // manage containers, so it sees the others' too.
    let (ok, said) = berth_as(&env, me, &["inspect", "member-box"]);
    assert!(
        ok && said.contains("member-s3cret"),
        "the owner does not see its own: {said}"
    );
    let (ok, said) = berth_as(&env, me, &["inspect", "root-box"]);
    assert!(
        ok && said.contains("root-s3cret"),
        "a member (who may manage containers) is refused: {said}"
    );
    let said = env.ok(&["inspect", "vault-web-1"]);
    assert!(
        said.contains("var-s3cret"),
        "root does not see the app's environment: {said}"
    );
    let said = env.ok(&["inspect", "member-box"]);
    assert!(
        said.contains("member-s3cret"),
        "root does not see a member's container: {said}"
    );

    // An image's config: its environment values and command for root (who
    // pulled it) and those who may manage containers.
    let reference = push_secret_image("sec/secret", "v1");
    env.ok(&["pull", &reference]);
    let (ok, said) = berth_as(&env, NOBODY, &["image", "inspect", &reference]);
    assert!(
        ok && said.contains("BUILD_TOKEN"),
        "nobody cannot inspect the image: {said}"
    );
    assert!(
        !said.contains("img-s3cret"),
        "nobody read the image's secrets: {said}"
    );
    assert!(env
        .ok(&["image", "inspect", &reference])
        .contains("img-s3cret"));

    env.ok(&["rm", "-f", "root-box", "member-box"]);
}

#[test]
fn names_and_paths_from_the_bus_are_checked_before_the_disk() {
    let env = DemoEnv::shared().unwrap();

    // AppIcon("../../x") made berthd read app.toml and an icon from any
    // directory, for anyone. Put a readable app where such a path leads (an
    // app's directory is named after its id).
    let decoy = berth_testkit::fsutil::TestDir::new("berth-sec-decoy-").unwrap();
    let app = decoy.join("hello");
    std::fs::create_dir_all(&app).unwrap();
    for f in ["app.toml", "compose.yaml", "icon.svg"] {
        std::fs::copy(
            berth_testkit::demo::catalog().join("hello").join(f),
            app.join(f),
        )
        .unwrap();
    }
    // The variables an installed app's copy keeps beside it.
    std::fs::write(
        app.join("vars.json"),
        r#"{"BERTH_DEMO_REGISTRY":"127.0.0.1:1"}"#,
    )
    .unwrap();
    for p in [decoy.path().to_path_buf(), app.clone()] {
        std::fs::set_permissions(&p, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    }
    let up = "../".repeat(env.berthd.root().join("apps").components().count());
    let traversal = format!("{up}{}", app.display().to_string().trim_start_matches('/'));
    let (ok, said) = gdbus(
        &env,
        NOBODY,
        HELPER,
        "org.berth.Helper1.AppIcon",
        &[&traversal],
    );
    assert!(!ok, "AppIcon followed {traversal}: {said}");
    assert!(
        said.contains("InvalidArgument") && said.contains("not an app id"),
        "{said}"
    );

    // Internal run options, over the raw API, even as root.
    let image = web_image(&env);
    for (options, word) in [
        (r#"{"netns":"/proc/1/ns/net","cmd":["ip","a"]}"#, "netns"),
        (
            r#"{"volumes":[{"host":"/root","container":"/x","read_only":false,"populate":true}]}"#,
            "populate",
        ),
        (
            r#"{"volumes":[{"host":"/tmp/../root","container":"/x","read_only":false}]}"#,
            "..",
        ),
    ] {
        let (ok, said) = gdbus(
            &env,
            None,
            HELPER,
            "org.berth.Helper1.CreateContainer",
            &[&image, options, "0"],
        );
        assert!(!ok, "CreateContainer took {options}: {said}");
        assert!(
            said.contains("InvalidArgument") && said.contains(word),
            "{options}: {said}"
        );
    }

    // Every kind of name, with a path in it.
    for (method, args) in [
        ("InspectApp", vec!["../hello"]),
        ("StartApp", vec!["../../hello", "0"]),
        ("UninstallApp", vec!["../hello", "", "0"]),
        ("InstallApp", vec!["hello", r#"{"catalog":"../demo"}"#, "0"]),
        ("RemoveCatalog", vec!["../demo", "0"]),
        ("AddCatalog", vec!["relative/dir", "", "@as []", "0"]),
        ("AddCatalog", vec!["/srv/../etc", "", "@as []", "0"]),
        ("RemoveVolume", vec!["../../etc_x", "0"]),
        ("InspectContainer", vec!["../x"]),
        ("ContainerLogs", vec!["../x", "0", "false", "0"]),
        ("RemoveContainer", vec!["a/b", "true", "0"]),
        ("InspectImage", vec!["../../x"]),
    ] {
        let (ok, said) = gdbus(
            &env,
            None,
            HELPER,
            &format!("org.berth.Helper1.{method}"),
            &args,
        );
        assert!(!ok, "{method}{args:?} was taken: {said}");
        assert!(said.contains("InvalidArgument"), "{method}{args:?}: {said}");
    }
}

#[test]
fn a_job_is_seen_by_who_started_it_only() {
    let env = DemoEnv::shared().unwrap();
    let image = web_image(&env);

    // nobody listens to every signal berthd sends, as any local user can.
    let out_dir = berth_testkit::fsutil::TestDir::new("berth-sec-monitor-").unwrap();
    let log = std::fs::File::create(out_dir.join("signals")).unwrap();
    let mut cmd = env.bus().command(NOBODY, "gdbus");
    cmd.args(["monitor", "--system", "--dest", "org.berth.Helper1"])
        .env("HOME", "/nonexistent")
        .stdout(log.try_clone().unwrap())
        .stderr(log);
    let monitor = ChildGuard::spawn("gdbus monitor", cmd).unwrap();
    std::thread::sleep(Duration::from_millis(500));

    // root pulls (the CLI follows its job's signals to the end) ...
    env.ok(&["pull", &image]);
    // ... and starts a job through the raw API, to ask about it as others.
    let (ok, said) = gdbus(&env, None, HELPER, "org.berth.Helper1.Pull", &[&image, "0"]);
    assert!(ok, "{said}");
    let path = said
        .split('\'')
        .find(|s| s.starts_with("/org/berth/Helper1/jobs/"))
        .unwrap_or_else(|| panic!("no job path in {said}"))
        .to_string();
    std::thread::sleep(Duration::from_secs(1));
    monitor.stop().unwrap();
    let heard = std::fs::read_to_string(out_dir.join("signals")).unwrap();
    assert!(
        !heard.contains("org.berth.Job1") && !heard.contains("/jobs/"),
        "nobody heard another user's job:\n{heard}"
    );

    for (method, args) in [
        ("org.berth.Job1.GetOutcome", vec![]),
        ("org.berth.Job1.GetProgress", vec![]),
        ("org.berth.Job1.Cancel", vec![]),
        (
            "org.freedesktop.DBus.Properties.Get",
            vec!["org.berth.Job1", "State"],
        ),
    ] {
        let (ok, said) = gdbus(&env, NOBODY, &path, method, &args);
        assert!(!ok, "nobody could call {method} on root's job: {said}");
        assert!(said.contains("AccessDenied"), "{method}: {said}");
    }
    // GetAll leaves out what the caller may not read: an empty answer for
    // nobody, both properties for root.
    let (ok, said) = gdbus(
        &env,
        NOBODY,
        &path,
        "org.freedesktop.DBus.Properties.GetAll",
        &["org.berth.Job1"],
    );
    assert!(ok && said.contains("{}"), "nobody's GetAll: {said}");
    let (ok, said) = gdbus(
        &env,
        None,
        &path,
        "org.freedesktop.DBus.Properties.GetAll",
        &["org.berth.Job1"],
    );
    assert!(
        ok && said.contains("'State'") && said.contains("'Kind'"),
        "root's GetAll: {said}"
    );
    let (ok, said) = gdbus(&env, None, &path, "org.berth.Job1.GetOutcome", &[]);
    assert!(
        ok && said.contains("true"),
        "root cannot read its own job: {said}"
    );
}

#[test]
fn without_polkit_the_group_decides_and_refusals_say_it_equals_root() {
    let env = DemoEnv::shared().unwrap();
    let (ok, said) = berth_as(&env, NOBODY, &["install", "hello"]);
    assert!(!ok, "nobody installed an app: {said}");
    assert!(
        said.contains("equals root"),
        "the refusal does not say what the group means: {said}"
    );
    assert!(!said.to_lowercase().contains("run as root"), "{said}");
    assert!(
        !said.contains("  "),
        "the message is not one line of words: {said:?}"
    );
    assert!(env.apps().is_empty());
}

/// polkit rules for the tests below: the member may manage the app `hello`
/// of catalog `demo` and nothing else of apps, pull images and read any log.
fn rules(member: &TestUser) -> String {
    format!(
        r#"polkit.addRule(function(action, subject) {{
    if (subject.user != "{user}") return polkit.Result.NOT_HANDLED;
    if (action.id == "org.berth.app-manage" && action.lookup("app") == "hello"
        && (action.lookup("catalog") == "demo" || action.lookup("catalog") == undefined)) {{
        return polkit.Result.YES;
    }}
    if (action.id == "org.berth.logs-read") return polkit.Result.YES;
    if (action.id == "org.berth.image-pull") return polkit.Result.YES;
    return polkit.Result.NOT_HANDLED;
}});
"#,
        user = member.name
    )
}

#[test]
fn polkit_decides_with_details_and_a_failing_polkit_refuses() {
    if !berth_testkit::require::tool(berth_testkit::polkit::POLKITD, "polkitd") {
        return;
    }
    let member = TestUser::create().unwrap();
    let bus = PrivateBus::start_with_polkit().unwrap();
    let mut polkit = Polkit::start(&bus, &rules(&member)).unwrap();
    // The member is in berthd's group, but polkit runs: the group means nothing.
    let env = DemoEnv::shared_on(bus, &group_config(&member)).unwrap();
    let me = Some(member.ids());

    // polkit sees the app and catalog in the details: hello yes, hello-api no.
    let (ok, said) = berth_as(&env, me, &["install", "hello"]);
    assert!(
        ok,
        "the rule for app hello did not apply: {said}\n{}",
        polkit.log()
    );
    let (ok, said) = berth_as(&env, me, &["install", "hello-api"]);
    assert!(!ok, "hello-api was installed: {said}");
    assert!(
        said.contains("polkit refused") && !said.contains("usermod"),
        "{said}"
    );
    let (ok, said) = berth_as(&env, me, &["rmi", &web_image(&env)]);
    assert!(!ok && said.contains("polkit refused"), "{said}");

    // An image's config is its puller's to read (and root's), not others'.
    let reference = push_secret_image("sec/pulled", "v1");
    let (ok, said) = berth_as(&env, me, &["pull", &reference]);
    assert!(ok, "{said}");
    let (ok, said) = berth_as(&env, me, &["image", "inspect", &reference]);
    assert!(
        ok && said.contains("img-s3cret"),
        "the puller does not see its image: {said}"
    );
    let (ok, said) = berth_as(&env, NOBODY, &["image", "inspect", &reference]);
    assert!(
        ok && !said.contains("img-s3cret"),
        "nobody read the image's secrets: {said}"
    );

    // Logs are their own right: the member reads root's container's log,
    // but may not run a command in it; nobody (no rule) reads nothing.
    env.ok(&[
        "run",
        "-d",
        "--name",
        "talker",
        &web_image(&env),
        "sh",
        "-c",
        "echo said-this; sleep 600",
    ]);
    std::thread::sleep(Duration::from_millis(500));
    let (ok, said) = berth_as(&env, me, &["logs", "talker"]);
    assert!(ok && said.contains("said-this"), "{said}");
    let (ok, said) = berth_as(&env, me, &["exec", "talker", "true"]);
    assert!(!ok && said.contains("org.berth.container-manage"), "{said}");
    let (ok, said) = berth_as(&env, NOBODY, &["logs", "talker"]);
    assert!(!ok && said.contains("org.berth.logs-read"), "{said}");
    // The owner reads its own app's log without any right.
    let (ok, said) = berth_as(&env, me, &["logs", "hello"]);
    assert!(ok, "{said}");

    // polkit goes away: the member's calls fail closed, never to the group.
    polkit.stop().unwrap();
    let (ok, said) = berth_as(&env, me, &["stop", "hello"]);
    assert!(!ok, "stop went through without polkit: {said}");
    assert!(said.contains("could not ask polkit"), "{said}");
    let app = env.app("hello");
    assert_eq!(app["state"], "running", "{app}");
    // berthd chose polkit at start, and says so.
    assert!(
        env.berthd.log().contains("polkit decides"),
        "{}",
        env.log_tail()
    );
    env.ok(&["rm", "-f", "talker"]);
}
