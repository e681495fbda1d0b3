//! Policy text (JSON or YAML: Cilium rules, CNP/CCNP, NetworkPolicy, Lists):
//! parsing never panics or hangs, errors render, and whatever is accepted is
//! valid and survives a round trip: serialized as JSON or YAML, it parses back
//! to the same rules. Accepted YAML also reads the same when an empty second
//! document sends it down the multi-document path instead of the direct one.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let rules = match policy::parse_rules(text) {
        Ok(rules) => rules,
        Err(err) => {
            assert!(!err.to_string().is_empty());
            return;
        }
    };
    for rule in &rules {
        if let Err(err) = rule.validate() {
            panic!("accepted an invalid rule ({err}): {rule:?}");
        }
    }
    let trimmed = text.trim_start();
    if !trimmed.starts_with('[') && !trimmed.starts_with('{') {
        let multi = format!("{text}\n---\n[]\n");
        match policy::parse_rules(&multi) {
            Ok(again) => assert_eq!(again, rules, "an empty second document changed the rules"),
            Err(err) => panic!("an empty second document made it fail: {err}"),
        }
    }
    let json = serde_json::to_string(&rules).expect("rules serialize to JSON");
    match policy::parse_rules(&json) {
        Ok(again) => assert_eq!(again, rules, "JSON round trip changed the rules: {json}"),
        Err(err) => panic!("own JSON refused ({err}): {json}"),
    }
    let yaml = serde_yaml::to_string(&rules).expect("rules serialize to YAML");
    match policy::parse_rules(&yaml) {
        Ok(again) => assert_eq!(again, rules, "YAML round trip changed the rules: {yaml}"),
        Err(err) => panic!("own YAML refused ({err}): {yaml}"),
    }
});
