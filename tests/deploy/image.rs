//! The image's build stage, as Docker would run it, without a Docker engine: the Dockerfile's
//! first stage is parsed (WORKDIR, COPY and RUN; anything else is refused rather than guessed),
//! its COPY steps are recreated in a temporary directory from the build context as
//! `.dockerignore` leaves it, and each RUN command is run there with `sh -c`, in order. The
//! filesystem root of the stage is a temporary directory, so RUN commands may not name absolute
//! paths. `target` in the stage's WORKDIR is a link to a directory under this build's target
//! directory, so release dependencies compile once per machine; the toolchain is the local one.
//! The crate itself is compiled in release mode each time, as the Dockerfile asks (some minutes
//! on two cores), so it runs under CI or with `IMAGE_BUILD=1` (`task image-check`); elsewhere
//! it says in one line that it was skipped.

use std::io::Write;
use std::path::{Component, Path, PathBuf};
use std::process::Command;
use std::time::SystemTime;

use super::{ROOT, tool};

/// One instruction, its continuation lines joined and comment lines dropped.
#[derive(Debug, PartialEq)]
pub struct Instruction {
    pub keyword: String,
    pub arguments: String,
}

pub fn instructions(dockerfile: &str) -> Vec<Instruction> {
    let mut result = Vec::new();
    let mut pending = String::new();
    for line in dockerfile.lines() {
        let trimmed = line.trim();
        assert!(
            !trimmed.starts_with("# escape="),
            "an escape directive is not emulated"
        );
        // Comment lines go, even inside a continued instruction, and so do blank lines.
        if trimmed.starts_with('#') || trimmed.is_empty() {
            continue;
        }
        match trimmed.strip_suffix('\\') {
            Some(start) => {
                pending.push_str(start);
                pending.push(' ');
            }
            None => {
                pending.push_str(trimmed);
                let (keyword, arguments) = pending
                    .split_once(char::is_whitespace)
                    .unwrap_or((&pending, ""));
                result.push(Instruction {
                    keyword: keyword.to_uppercase(),
                    arguments: arguments.trim().to_owned(),
                });
                pending.clear();
            }
        }
    }
    assert!(
        pending.is_empty(),
        "the Dockerfile ends inside a continued line"
    );
    result
}

/// The stages: each starts at a FROM; the name after `AS`, if any, and the instructions after it.
pub fn stages(instructions: Vec<Instruction>) -> Vec<(Option<String>, Vec<Instruction>)> {
    let mut stages: Vec<(Option<String>, Vec<Instruction>)> = Vec::new();
    for instruction in instructions {
        if instruction.keyword == "FROM" {
            let words: Vec<&str> = instruction.arguments.split_whitespace().collect();
            let name = match words.as_slice() {
                [_, r#as, name] if r#as.eq_ignore_ascii_case("as") => Some((*name).to_owned()),
                _ => None,
            };
            stages.push((name, Vec::new()));
        } else {
            let (_, stage) = stages
                .last_mut()
                .unwrap_or_else(|| panic!("{} before FROM", instruction.keyword));
            stage.push(instruction);
        }
    }
    stages
}

/// `.dockerignore` as Docker reads it: one pattern a line, `#` comments, blank lines ignored,
/// each pattern cleaned (leading and trailing `/` dropped, `.` and `..` resolved), `!` for an
/// exception; the last pattern that matches a path or one of its parent directories decides.
/// `*` and `?` stay within one path element, `[...]` is a class, `**` spans any number of
/// elements, none included.
pub struct Ignore {
    patterns: Vec<(bool, Vec<String>)>,
}

impl Ignore {
    pub fn parse(text: &str) -> Ignore {
        let patterns = text
            .lines()
            .filter(|line| !line.starts_with('#'))
            .map(str::trim)
            .filter(|line| !line.is_empty())
            .filter_map(|line| {
                let (exception, pattern) = match line.strip_prefix('!') {
                    Some(rest) => (true, rest.trim()),
                    None => (false, line),
                };
                let cleaned = clean(pattern);
                (!cleaned.is_empty()).then_some((exception, cleaned))
            })
            .collect();
        Ignore { patterns }
    }

    /// Whether a path relative to the context (`a/b/c`) is left out of it.
    pub fn excludes(&self, path: &str) -> bool {
        let elements = clean(path);
        let mut excluded = false;
        for (exception, pattern) in &self.patterns {
            let hit = (1..=elements.len()).any(|n| matches_elements(pattern, &elements[..n]));
            if hit {
                excluded = !exception;
            }
        }
        excluded
    }

    fn has_exceptions(&self) -> bool {
        self.patterns.iter().any(|(exception, _)| *exception)
    }
}

/// A path's elements after Go's `filepath.Clean`, relative to the context root.
fn clean(path: &str) -> Vec<String> {
    let mut elements: Vec<String> = Vec::new();
    for element in path.split('/') {
        match element {
            "" | "." => {}
            ".." => {
                elements.pop();
            }
            other => elements.push(other.to_owned()),
        }
    }
    elements
}

fn matches_elements(pattern: &[String], path: &[String]) -> bool {
    match pattern.split_first() {
        None => path.is_empty(),
        Some((first, rest)) if first == "**" => {
            (0..=path.len()).any(|skip| matches_elements(rest, &path[skip..]))
        }
        Some((first, rest)) => match path.split_first() {
            Some((element, path_rest)) => {
                let pattern: Vec<char> = first.chars().collect();
                let element: Vec<char> = element.chars().collect();
                matches_element(&pattern, &element) && matches_elements(rest, path_rest)
            }
            None => false,
        },
    }
}

/// Go's `filepath.Match` within one path element: `*`, `?`, `[class]` (`^` negates, `a-z`
/// ranges) and `\` escapes.
fn matches_element(pattern: &[char], name: &[char]) -> bool {
    match pattern.first() {
        None => name.is_empty(),
        Some('*') => (0..=name.len()).any(|skip| matches_element(&pattern[1..], &name[skip..])),
        Some('?') => !name.is_empty() && matches_element(&pattern[1..], &name[1..]),
        Some('[') => {
            let Some(close) = pattern.iter().skip(1).position(|c| *c == ']') else {
                panic!("unclosed [ in a .dockerignore pattern");
            };
            let class = &pattern[1..=close];
            let (negated, class) = match class.first() {
                Some('^') => (true, &class[1..]),
                _ => (false, class),
            };
            let Some(c) = name.first() else {
                return false;
            };
            let mut inside = false;
            let mut i = 0;
            while i < class.len() {
                if i + 2 < class.len() && class[i + 1] == '-' {
                    inside |= class[i] <= *c && *c <= class[i + 2];
                    i += 3;
                } else {
                    inside |= class[i] == *c;
                    i += 1;
                }
            }
            inside != negated && matches_element(&pattern[close + 2..], &name[1..])
        }
        Some('\\') if pattern.len() > 1 => {
            name.first() == Some(&pattern[1]) && matches_element(&pattern[2..], &name[1..])
        }
        Some(c) => name.first() == Some(c) && matches_element(&pattern[1..], &name[1..]),
    }
}

/// A path inside the stage's filesystem, whose root is `root`.
fn inside(root: &Path, workdir: &Path, path: &str) -> PathBuf {
    let relative = Path::new(path);
    let absolute = if relative.is_absolute() {
        relative.to_path_buf()
    } else {
        workdir.join(relative)
    };
    let mut result = root.to_path_buf();
    for component in absolute.components() {
        match component {
            Component::Normal(part) => result.push(part),
            Component::ParentDir => assert!(result.pop() && result.starts_with(root), "{path}"),
            _ => {}
        }
    }
    result
}

/// Copies a file or a directory's contents from the context, leaving out what `.dockerignore`
/// excludes, with the files' modification times kept.
fn copy_from_context(ignore: &Ignore, context: &Path, relative: &str, to: &Path) {
    let from = context.join(relative);
    if from.is_dir() {
        std::fs::create_dir_all(to).expect("mkdir");
        for entry in std::fs::read_dir(&from).expect("read dir") {
            let name = entry.expect("entry").file_name();
            let name = name.to_str().expect("UTF-8 name");
            let child = format!("{relative}/{name}");
            if ignore.excludes(&child) && !(from.join(name).is_dir() && ignore.has_exceptions()) {
                continue;
            }
            copy_from_context(ignore, context, &child, &to.join(name));
        }
    } else {
        std::fs::copy(&from, to).unwrap_or_else(|e| panic!("{}: {e}", from.display()));
        let modified = std::fs::metadata(&from)
            .and_then(|m| m.modified())
            .expect("mtime");
        std::fs::File::options()
            .write(true)
            .open(to)
            .and_then(|f| f.set_modified(modified))
            .expect("set mtime");
    }
}

/// `COPY [flags] <src>... <dest>` within the build stage, from the context.
fn copy_step(ignore: &Ignore, context: &Path, root: &Path, workdir: &Path, arguments: &str) {
    let words: Vec<&str> = arguments.split_whitespace().collect();
    assert!(
        !arguments.starts_with('[') && !words.iter().any(|w| w.starts_with("--")),
        "COPY {arguments}: only the plain form is emulated"
    );
    let Some((dest, sources)) = words.split_last() else {
        panic!("COPY without arguments");
    };
    assert!(!sources.is_empty(), "COPY {arguments}: no source");
    let into_directory = dest.ends_with('/') || sources.len() > 1;
    let dest = inside(root, workdir, dest);
    for source in sources {
        assert!(
            !source.contains(['*', '?', '[']),
            "COPY {source}: wildcards are not emulated"
        );
        let relative = clean(source).join("/");
        let path = context.join(&relative);
        // What .dockerignore excludes is not in the context Docker sends: COPY does not find it.
        assert!(
            path.exists() && !ignore.excludes(&relative),
            "COPY {source}: not in the build context"
        );
        let target = if path.is_file() && (into_directory || dest.is_dir()) {
            std::fs::create_dir_all(&dest).expect("mkdir");
            dest.join(path.file_name().expect("file name"))
        } else {
            if let Some(parent) = dest.parent() {
                std::fs::create_dir_all(parent).expect("mkdir");
            }
            dest.clone()
        };
        copy_from_context(ignore, context, &relative, &target);
    }
}

/// The environment a RUN sees: the tools' locations, nothing of this test run's own.
fn run_environment() -> Vec<(String, String)> {
    [
        "PATH",
        "HOME",
        "CARGO_HOME",
        "RUSTUP_HOME",
        "RUSTUP_TOOLCHAIN",
    ]
    .into_iter()
    .filter_map(|name| Some((name.to_owned(), std::env::var(name).ok()?)))
    .collect()
}

/// Runs the first stage, with `root` as its filesystem root.
fn run_build_stage(sh: &Path, stage: &[Instruction], root: &Path, cache: &Path) {
    let ignore = Ignore::parse(
        &std::fs::read_to_string(Path::new(ROOT).join(".dockerignore")).unwrap_or_default(),
    );
    let mut workdir = PathBuf::from("/");
    for Instruction { keyword, arguments } in stage {
        match keyword.as_str() {
            "WORKDIR" => {
                workdir = workdir.join(arguments);
                let dir = inside(root, &workdir, ".");
                std::fs::create_dir_all(&dir).expect("WORKDIR");
                // Dependencies compiled by an earlier run stay: cargo's own target directory.
                let link = dir.join("target");
                if !link.exists() {
                    std::os::unix::fs::symlink(cache, &link).expect("target link");
                }
            }
            "COPY" => copy_step(&ignore, Path::new(ROOT), root, &workdir, arguments),
            "RUN" => {
                assert!(
                    !arguments.starts_with('['),
                    "RUN {arguments}: the exec form is not emulated"
                );
                assert!(
                    !arguments
                        .split(|c: char| c.is_whitespace() || c == '=' || c == '>')
                        .any(|word| word.starts_with('/') && word != "/dev/null"),
                    "RUN {arguments}: an absolute path, which the emulation cannot keep inside \
                     the stage; write within WORKDIR"
                );
                let output = Command::new(sh)
                    .arg("-c")
                    .arg(arguments)
                    .current_dir(inside(root, &workdir, "."))
                    .env_clear()
                    .envs(run_environment())
                    .output()
                    .expect("sh runs");
                let stderr = String::from_utf8_lossy(&output.stderr);
                let tail: Vec<&str> = stderr.lines().rev().take(30).collect();
                assert!(
                    output.status.success(),
                    "RUN {arguments}\nfailed ({}):\n{}",
                    output.status,
                    tail.into_iter().rev().collect::<Vec<_>>().join("\n")
                );
            }
            other => panic!("{other} in the build stage is not emulated"),
        }
    }
}

#[test]
fn the_image_builds_from_what_the_dockerfile_copies() {
    let Some(sh) = tool("sh") else {
        return;
    };
    if tool("cargo").is_none() {
        return;
    }
    if std::env::var_os("CI").is_none() && std::env::var_os("IMAGE_BUILD").is_none() {
        // Past the harness's capture: a skip must be seen.
        let _ = writeln!(
            std::io::stderr(),
            "skipped: the image build (a release build, some minutes) runs under CI or with IMAGE_BUILD=1"
        );
        return;
    }
    let dockerfile =
        std::fs::read_to_string(Path::new(ROOT).join("Dockerfile")).expect("Dockerfile");
    let mut stages = stages(instructions(&dockerfile)).into_iter();
    let Some((Some(build), build_stage)) = stages.next() else {
        panic!("the first stage has a name for the runtime stage to copy from");
    };
    let cache = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .expect("the target directory")
        .join("image-build");
    std::fs::create_dir_all(&cache).expect("image-build directory");
    let root = tempfile::tempdir().expect("temp dir");
    let root = root.path();
    let started = SystemTime::now();
    run_build_stage(&sh, &build_stage, root, &cache);

    // What the later stages take from the build stage exists, is new, and is this version.
    let mut copied = 0;
    for (_, stage) in stages {
        for Instruction { keyword, arguments } in &stage {
            let from = format!("--from={build} ");
            let Some(rest) = arguments.strip_prefix(&from) else {
                continue;
            };
            assert_eq!(keyword, "COPY");
            let (source, _) = rest.split_once(' ').expect("COPY --from=... src dest");
            let binary = inside(root, Path::new("/"), source);
            let modified = std::fs::metadata(&binary)
                .and_then(|m| m.modified())
                .unwrap_or_else(|e| panic!("{source}: {e}"));
            assert!(modified >= started, "{source} was not built by this run");
            let output = Command::new(&binary)
                .arg("--version")
                .output()
                .expect("runs");
            assert!(output.status.success(), "{source} --version");
            assert_eq!(
                String::from_utf8_lossy(&output.stdout).trim(),
                format!("{} {}", env!("CARGO_PKG_NAME"), env!("CARGO_PKG_VERSION"))
            );
            copied += 1;
        }
    }
    assert_eq!(
        copied, 1,
        "the runtime stage copies the binary from {build}"
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instructions_join_continued_lines_and_drop_comments() {
        let parsed = instructions(
            "# syntax=docker/dockerfile:1\nFROM rust AS build\nworkdir /src\nRUN a \\\n    && b \\\n# a comment\n\n    && c\nCOPY x ./\n",
        );
        let pairs: Vec<(&str, String)> = parsed
            .iter()
            .map(|i| {
                let words: Vec<&str> = i.arguments.split_whitespace().collect();
                (i.keyword.as_str(), words.join(" "))
            })
            .collect();
        assert_eq!(
            pairs,
            [
                ("FROM", "rust AS build".to_owned()),
                ("WORKDIR", "/src".to_owned()),
                ("RUN", "a && b && c".to_owned()),
                ("COPY", "x ./".to_owned()),
            ]
        );
        let staged = stages(parsed);
        assert_eq!(staged.len(), 1);
        assert_eq!(staged[0].0.as_deref(), Some("build"));
        assert_eq!(staged[0].1.len(), 3);
    }

    #[test]
    fn dockerignore_follows_dockers_rules() {
        let ignore = Ignore::parse(
            "# comment\n\ntarget/\n/.git\nconfigs/.env\n*.md\n!KEEP.md\n**/*.log\nsrc/**/gen\nb?n\n[a-c]x\n",
        );
        for excluded in [
            "target",
            "target/release/eso-refresher",
            ".git/HEAD",
            "configs/.env",
            "README.md",
            "a.log",
            "deep/down/a.log",
            "src/gen",
            "src/a/b/gen/file.rs",
            "bin/x",
            "bx",
            "./target/x",
        ] {
            assert!(ignore.excludes(excluded), "{excluded} excluded");
        }
        for kept in [
            "configs/.env.example",
            "KEEP.md",
            "docs/guide.md",
            "src/main.rs",
            "targets",
            "src/target",
            "bn",
            "dx",
            "gen",
        ] {
            assert!(!ignore.excludes(kept), "{kept} kept");
        }
        let exception = Ignore::parse("src\n!src/keep.rs\n");
        assert!(exception.excludes("src/other.rs"));
        assert!(!exception.excludes("src/keep.rs"));
        assert!(Ignore::parse("*\n").excludes("anything/below"));
        assert!(!Ignore::parse("").excludes("src"));
    }

    #[test]
    fn copy_takes_what_the_context_holds() {
        let context = tempfile::tempdir().unwrap();
        let context = context.path();
        for file in [
            "Cargo.toml",
            "src/main.rs",
            "src/http/openapi.json",
            "src/.env",
            "notes.md",
        ] {
            std::fs::create_dir_all(context.join(file).parent().unwrap()).unwrap();
            std::fs::write(context.join(file), file).unwrap();
        }
        let ignore = Ignore::parse("**/.env\nnotes.md\n");
        let root = tempfile::tempdir().unwrap();
        let root = root.path();
        let workdir = Path::new("/src");
        copy_step(&ignore, context, root, workdir, "Cargo.toml ./");
        copy_step(&ignore, context, root, workdir, "src ./src");
        copy_step(
            &ignore,
            context,
            root,
            workdir,
            "src/main.rs /elsewhere/main.rs",
        );
        let read = |path: &str| std::fs::read_to_string(root.join(path)).ok();
        assert_eq!(read("src/Cargo.toml").as_deref(), Some("Cargo.toml"));
        assert_eq!(read("src/src/main.rs").as_deref(), Some("src/main.rs"));
        assert_eq!(
            read("src/src/http/openapi.json").as_deref(),
            Some("src/http/openapi.json")
        );
        assert_eq!(read("elsewhere/main.rs").as_deref(), Some("src/main.rs"));
        assert_eq!(read("src/src/.env"), None, "excluded");
        let missing = std::panic::catch_unwind(|| {
            copy_step(&ignore, context, root, workdir, "notes.md ./");
        });
        assert!(missing.is_err(), "an excluded source is not in the context");
    }

    #[test]
    fn paths_stay_inside_the_stage() {
        let root = Path::new("/stage");
        assert_eq!(
            inside(root, Path::new("/src"), "target/release/x"),
            Path::new("/stage/src/target/release/x")
        );
        assert_eq!(
            inside(root, Path::new("/src"), "/eso-refresher"),
            Path::new("/stage/eso-refresher")
        );
        assert_eq!(
            inside(root, Path::new("/src"), "./"),
            Path::new("/stage/src")
        );
    }
}
