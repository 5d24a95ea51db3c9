//! The crate's shape, checked: the top-level modules of `src/` depend on each other in one
//! direction only (a cycle between folders makes every change ripple both ways). Read from
//! the sources, test builds only.

use std::{
    collections::{BTreeMap, BTreeSet},
    path::Path,
};

/// Top-level module → the top-level modules its code names (`crate::x`), comments and unit
/// tests left out.
fn dependencies(src: &Path) -> BTreeMap<String, BTreeSet<String>> {
    let modules: BTreeSet<String> = std::fs::read_dir(src)
        .expect("src")
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            let stem = name.strip_suffix(".rs").unwrap_or(&name).to_string();
            (stem != "lib" && stem != "main").then_some(stem)
        })
        .collect();
    let path_use = regex::Regex::new(r"crate::(\w+)").expect("static regex");
    let group_use = regex::Regex::new(r"(?s)use crate::\{(.*?)\};").expect("static regex");
    let item =
        regex::Regex::new(r"(?m)(?:^|\{|,)\s*(\w+)(?:::|\s*,|\s*$|\s*\})").expect("static regex");
    let mut deps: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut stack = vec![src.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).expect("readable dir").flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
                continue;
            }
            let rel = path.strip_prefix(src).expect("under src");
            let first = rel.components().next().expect("a component");
            let name = first.as_os_str().to_string_lossy();
            let top = name.strip_suffix(".rs").unwrap_or(&name).to_string();
            if !modules.contains(&top) || path.extension().is_none_or(|e| e != "rs") {
                continue;
            }
            let text = std::fs::read_to_string(&path).expect("readable source");
            let code = text
                .split("#[cfg(test)]\nmod tests")
                .next()
                .unwrap_or_default();
            let code: String = code
                .lines()
                .map(|l| l.split("//").next().unwrap_or_default())
                .collect::<Vec<_>>()
                .join("\n");
            let mut named: BTreeSet<String> = path_use
                .captures_iter(&code)
                .map(|c| c[1].to_string())
                .collect();
            for group in group_use.captures_iter(&code) {
                // Only the group's first level names modules.
                let mut depth = 0;
                let top_level: String = group[1]
                    .chars()
                    .filter(|ch| {
                        let keep = depth == 0;
                        match ch {
                            '{' => depth += 1,
                            '}' => depth -= 1,
                            _ => {}
                        }
                        keep
                    })
                    .collect();
                named.extend(item.captures_iter(&top_level).map(|c| c[1].to_string()));
            }
            let entry = deps.entry(top.clone()).or_default();
            entry.extend(
                named
                    .into_iter()
                    .filter(|m| *m != top && modules.contains(m)),
            );
        }
    }
    deps
}

/// A chain `a → … → a` when there is one.
fn cycle(deps: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    fn walk(
        node: &str,
        deps: &BTreeMap<String, BTreeSet<String>>,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(at) = path.iter().position(|p| p == node) {
            let mut found = path[at..].to_vec();
            found.push(node.to_string());
            return Some(found);
        }
        if done.contains(node) {
            return None;
        }
        path.push(node.to_string());
        for next in deps.get(node).into_iter().flatten() {
            if let Some(c) = walk(next, deps, path, done) {
                return Some(c);
            }
        }
        path.pop();
        done.insert(node.to_string());
        None
    }
    let mut done = BTreeSet::new();
    deps.keys()
        .find_map(|start| walk(start, deps, &mut Vec::new(), &mut done))
}

#[test]
fn modules_depend_on_each_other_one_way_only() {
    let deps = dependencies(&Path::new(env!("CARGO_MANIFEST_DIR")).join("src"));
    assert!(deps["supervision"].contains("actors"), "{deps:?}");
    assert!(!deps["actors"].contains("supervision"), "{deps:?}");
    assert_eq!(cycle(&deps), None, "{deps:#?}");
}

#[test]
fn a_cycle_is_found() {
    let mut deps: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    deps.entry("a".into()).or_default().insert("b".into());
    deps.entry("b".into()).or_default().insert("c".into());
    assert_eq!(cycle(&deps), None);
    deps.entry("c".into()).or_default().insert("a".into());
    assert_eq!(
        cycle(&deps),
        Some(vec!["a".into(), "b".into(), "c".into(), "a".into()])
    );
}
