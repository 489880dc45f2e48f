//! The README's Layout and lib.rs's table of contents say what is there.

use std::collections::BTreeSet;
use std::path::Path;

/// The lines of the README's Layout tree (the fenced block under the heading).
fn layout_tree() -> Vec<String> {
    let readme = std::fs::read_to_string("README.md").unwrap();
    let section = readme
        .split("\n## Layout\n")
        .nth(1)
        .expect("a Layout section");
    let block = section.split("```text\n").nth(1).expect("a tree block");
    let tree = block.split("```").next().unwrap_or_default();
    tree.lines().map(String::from).collect()
}

/// The paths the tree names: a line's first column (before a run of two
/// spaces), under the directory of the last unindented line when the line
/// is indented by two. Deeper lines continue a description.
fn named_paths() -> BTreeSet<String> {
    let mut named = BTreeSet::new();
    let mut dir = String::new();
    for line in layout_tree() {
        let indent = line.len() - line.trim_start().len();
        let column = line.trim_start().split("  ").next().unwrap_or_default();
        let prefix = match indent {
            0 => "",
            2 => dir.as_str(),
            _ => continue,
        };
        let paths: Vec<String> = column
            .split_whitespace()
            .map(|p| format!("{prefix}{p}"))
            .collect();
        if indent == 0 {
            dir = paths.first().cloned().unwrap_or_default();
        }
        named.extend(paths);
    }
    named
}

#[test]
fn every_path_the_readme_layout_names_exists() {
    for path in named_paths() {
        assert!(
            Path::new(&path).exists(),
            "README Layout names {path}, which is not there"
        );
    }
}

#[test]
fn the_readme_layout_names_every_source_file_and_top_level_folder() {
    let named = named_paths();
    let entries = |dir: &str| -> Vec<(String, bool)> {
        std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap())
            .map(|e| {
                (
                    e.file_name().to_string_lossy().into_owned(),
                    e.path().is_dir(),
                )
            })
            .filter(|(name, _)| !name.starts_with('.') && name != "target")
            .collect()
    };
    for (name, is_dir) in entries("src") {
        let path = if is_dir {
            format!("src/{name}/")
        } else {
            format!("src/{name}")
        };
        assert!(named.contains(&path), "README Layout does not name {path}");
    }
    for (name, is_dir) in entries(".") {
        if is_dir {
            let named_here = named.iter().any(|p| p.starts_with(&format!("{name}/")));
            assert!(named_here, "README Layout does not name {name}/");
        }
    }
}

#[test]
fn lib_rs_table_of_contents_names_every_module() {
    let lib = std::fs::read_to_string("src/lib.rs").unwrap();
    let docs: String = lib
        .lines()
        .filter_map(|l| l.strip_prefix("//!"))
        .collect::<Vec<_>>()
        .join("\n");
    let modules = lib.lines().filter_map(|l| {
        let l = l.trim_start_matches("pub ");
        l.strip_prefix("mod ")?.strip_suffix(';')
    });
    for module in modules {
        assert!(
            docs.contains(&format!("`{module}`")),
            "lib.rs's table of contents does not name {module}"
        );
    }
}

/// Every reason the operator writes (conditions and Events) is named in
/// the README, as a user looks it up there.
#[test]
fn the_readme_names_every_reason() {
    let readme = std::fs::read_to_string("README.md").expect("README.md");
    let missing: Vec<&str> = offer_cancel_operator::decide::reason::ALL
        .iter()
        .copied()
        .filter(|r| !readme.contains(&format!("`{r}`")))
        .collect();
    assert!(missing.is_empty(), "README names no {missing:?}");
}
