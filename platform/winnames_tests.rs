//! Unit tests of the Windows name mapping (compiled on every platform).

use super::*;

fn round_trip(server: &str) {
    let win = to_windows(server);
    assert_eq!(
        from_windows(&win).as_deref(),
        Ok(server),
        "{server:?} -> {win:?}"
    );
    assert!(!win.ends_with('.') && !win.ends_with(' '), "{win:?}");
    assert!(
        !win.chars()
            .any(|c| FORBIDDEN.contains(&c) || (c as u32) < 0x20),
        "{win:?}"
    );
    assert!(!is_device(&win) || win.starts_with(ESCAPE), "{win:?}");
}

#[test]
fn every_forbidden_character_maps_to_the_private_use_area_and_back() {
    for c in FORBIDDEN {
        let server = format!("a{c}b");
        let win = to_windows(&server);
        assert_eq!(win, format!("a{}b", shifted(*c)));
        round_trip(&server);
    }
    assert_eq!(to_windows("what?"), "what\u{F03F}");
    assert_eq!(to_windows("a<b>c"), "a\u{F03C}b\u{F03E}c");
}

#[test]
fn control_characters_are_shifted() {
    for code in 1u32..0x20 {
        let Some(c) = char::from_u32(code) else {
            continue;
        };
        let server = format!("x{c}y");
        assert_eq!(
            to_windows(&server).chars().nth(1),
            char::from_u32(0xF000 + code)
        );
        round_trip(&server);
    }
}

#[test]
fn trailing_dots_and_spaces_are_encoded_but_inner_ones_are_not() {
    assert_eq!(to_windows("notes."), "notes\u{F02E}");
    assert_eq!(to_windows("notes "), "notes\u{F020}");
    assert_eq!(to_windows("a.b c"), "a.b c");
    assert_eq!(to_windows("dots..."), "dots..\u{F02E}");
    for s in ["notes.", "notes ", "dots...", "sp  ", ". .", "a. "] {
        round_trip(s);
    }
}

#[test]
fn reserved_device_names_are_encoded_in_any_case_and_with_extensions() {
    for dev in DEVICES {
        for name in [
            dev.to_string(),
            dev.to_lowercase(),
            format!("{dev}.txt"),
            format!("{}.tar.gz", dev.to_lowercase()),
            format!("{dev} .txt"),
        ] {
            let win = to_windows(&name);
            assert_ne!(win, name, "{name:?} must be encoded");
            round_trip(&name);
        }
    }
    assert_eq!(to_windows("CON"), "CO\u{F04E}");
    assert_eq!(to_windows("con.txt"), "co\u{F06E}.txt");
    // Not devices: longer or shorter bases, or the device name inside a longer name.
    for plain in [
        "CONSOLE", "CO", "COM10", "LPT0.txt", "my CON", "xNUL.txt", "com",
    ] {
        assert_eq!(to_windows(plain), plain);
    }
}

#[test]
fn private_use_characters_of_server_names_stay_unambiguous() {
    // A server name that looks like an encoding must not decode to another name.
    let literal = "a\u{F03F}b";
    assert_ne!(to_windows(literal), to_windows("a?b"));
    round_trip(literal);
    round_trip("\u{F0FF}");
    round_trip("\u{F0FE}x");
    round_trip("x\u{F0FF}\u{F03F}");
}

#[test]
fn windows_names_that_no_server_name_encodes_to_are_refused() {
    for bad in [
        "\u{F041}bc", // shifted 'A' outside a device name
        "CON",        // Windows never passes it, and it is not canonical
        "a\u{F0FF}",  // dangling escape
        "a\u{F0FF}b", // escape of a non-private-use character
        "a\u{F0C0}",  // private-use character outside the ASCII shift
        "",
    ] {
        assert!(from_windows(bad).is_err(), "{bad:?}");
    }
    assert_eq!(
        from_windows("plain name.txt").as_deref(),
        Ok("plain name.txt")
    );
}

#[test]
fn names_differing_only_in_case_both_stay_reachable_with_stable_suffixes() {
    let names = DirNames::new(["Report.txt", "report.txt", "REPORT.TXT", "other"]);
    let wins: Vec<&str> = ["Report.txt", "report.txt", "REPORT.TXT"]
        .iter()
        .map(|s| names.windows_name(s).expect("listed"))
        .collect();
    // The first in byte order keeps its name; the others get a suffix before the extension.
    assert_eq!(names.windows_name("REPORT.TXT"), Some("REPORT.TXT"));
    assert!(
        wins[0].starts_with("Report~") && wins[0].contains(CASE_MARK),
        "{wins:?}"
    );
    let folded: std::collections::HashSet<String> = wins.iter().map(|w| fold(w)).collect();
    assert_eq!(folded.len(), 3, "{wins:?}");
    for (server, win) in ["Report.txt", "report.txt", "REPORT.TXT"].iter().zip(&wins) {
        assert_eq!(names.resolve(win), Some(*server));
        assert_eq!(names.resolve(&win.to_lowercase()), Some(*server), "{win:?}");
        assert!(win.ends_with(".txt") || win.ends_with(".TXT"), "{win:?}");
    }
    // The suffix depends only on the name: the same in another folder with other neighbours.
    let again = DirNames::new(["REPORT.TXT", "report.txt"]);
    assert_eq!(
        again.windows_name("report.txt"),
        names.windows_name("report.txt")
    );
    assert_eq!(names.resolve("OTHER"), Some("other"));
}

#[test]
fn server_name_resolves_existing_names_case_insensitively_and_encodes_new_ones() {
    let names = DirNames::new(["Budget.xlsx", "a?b"]);
    assert_eq!(
        names.server_name("BUDGET.XLSX").as_deref(),
        Ok("Budget.xlsx")
    );
    assert_eq!(names.server_name("A\u{F03F}B").as_deref(), Ok("a?b"));
    assert_eq!(
        names.server_name("new\u{F02A}.txt").as_deref(),
        Ok("new*.txt")
    );
    assert!(names.server_name("x~0011aabb\u{F0FE}.txt").is_err());
}

#[test]
fn kept_local_names() {
    for local in [
        "desktop.ini",
        "DESKTOP.INI",
        "Thumbs.db",
        "~$Budget.xlsx",
        "~$ort.docx",
    ] {
        assert!(is_kept_local(local), "{local}");
    }
    for remote in ["Budget.xlsx", "~Budget.xlsx", "$~x", "desktop.ini.bak"] {
        assert!(!is_kept_local(remote), "{remote}");
    }
}

/// Property-style: many generated names round-trip, and a folder of them maps to distinct,
/// case-insensitively unique Windows names that resolve back.
#[test]
fn generated_names_round_trip_and_folders_stay_unique() {
    const ALPHABET: &[char] = &[
        'a', 'A', 'b', 'B', 'z', '.', ' ', '<', '>', ':', '"', '|', '?', '*', '\\', '\u{1}',
        '\u{1f}', '~', '$', 'é', 'É', 'ß', '\u{F000}', '\u{F03F}', '\u{F0FE}', '\u{F0FF}', '1',
        'N', 'o', 'C', 'L', 'P', 'T', 'U', 'X', '¹',
    ];
    let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut next = || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let mut folder = Vec::new();
    for _ in 0..5000 {
        let len = 1 + (next() % 8) as usize;
        let name: String = (0..len)
            .map(|_| ALPHABET[(next() % ALPHABET.len() as u64) as usize])
            .collect();
        round_trip(&name);
        folder.push(name);
    }
    for device in ["con", "Nul.txt", "LPT1", "com¹.x", "AUX "] {
        round_trip(device);
        folder.push(device.to_string());
    }
    let table = DirNames::new(folder.iter().map(String::as_str));
    let mut seen = std::collections::HashSet::new();
    for server in &folder {
        let win = table.windows_name(server).expect("every name listed");
        assert_eq!(table.resolve(win), Some(server.as_str()));
        seen.insert(fold(win));
    }
    let distinct: std::collections::HashSet<&String> = folder.iter().collect();
    assert_eq!(seen.len(), distinct.len());
}
