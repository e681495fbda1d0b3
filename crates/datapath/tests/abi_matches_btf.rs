//! The Rust mirrors of the datapath's structs must match the C layout, as
//! recorded in the BTF of the compiled object.

use std::{collections::HashMap, process::Command};

use datapath::{abi::layouts, object::BPF_LXC};

/// struct name -> (size, [(field, byte offset)]) from `bpftool btf dump`.
fn btf_structs(object: &[u8]) -> HashMap<String, (usize, Vec<(String, usize)>)> {
    let path = std::env::temp_dir().join(format!("abi-check-{}.o", std::process::id()));
    std::fs::write(&path, object).unwrap();
    let out = Command::new("bpftool")
        .args(["btf", "dump", "file"])
        .arg(&path)
        .args(["format", "raw"])
        .output()
        .expect("bpftool is installed by `make setup`");
    std::fs::remove_file(&path).unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let text = String::from_utf8(out.stdout).unwrap();
    let mut structs = HashMap::new();
    let mut current: Option<String> = None;
    for line in text.lines() {
        if line.starts_with('[') {
            current = None;
            if let Some(rest) = line.split("] STRUCT '").nth(1) {
                let name = rest.split('\'').next().unwrap().to_string();
                let size = field_value(line, "size=");
                structs.insert(name.clone(), (size, Vec::new()));
                current = Some(name);
            }
        } else if let Some(name) = &current {
            let field = line.trim().split('\'').nth(1).unwrap().to_string();
            let offset = field_value(line, "bits_offset=") / 8;
            structs.get_mut(name).unwrap().1.push((field, offset));
        }
    }
    structs
}

fn field_value(line: &str, key: &str) -> usize {
    let rest = line.split(key).nth(1).unwrap();
    rest.split_whitespace().next().unwrap().parse().unwrap()
}

#[test]
fn rust_mirrors_match_the_c_structs() {
    let btf = btf_structs(BPF_LXC);
    for layout in layouts() {
        let (size, fields) = btf
            .get(layout.c_name)
            .unwrap_or_else(|| panic!("struct {} is not in the object's BTF", layout.c_name));
        assert_eq!(layout.size, *size, "size of struct {}", layout.c_name);
        let rust: Vec<(String, usize)> = layout
            .fields
            .iter()
            .map(|(n, o)| (n.to_string(), *o))
            .collect();
        assert_eq!(&rust, fields, "fields of struct {}", layout.c_name);
    }
}
