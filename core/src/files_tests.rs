//! Tests of `files.rs`.

use super::*;

#[test]
fn pid_file_forms() {
    assert_eq!(
        parse_pid_file(b"48213 7731942\n"),
        Ok(PidFile {
            pid: 48213,
            starttime: Some(7731942)
        })
    );
    assert_eq!(
        parse_pid_file(b"42\n"),
        Ok(PidFile {
            pid: 42,
            starttime: None
        })
    );
    for bad in [
        &b""[..],
        b"0",
        b"1",
        b"-5",
        b"abc",
        b"12 x",
        b"1 2 3",
        b"\xff",
    ] {
        assert!(parse_pid_file(bad).is_err(), "{bad:?} should be malformed");
    }
}

#[test]
fn result_ignores_unknown_keys_and_checks_types() {
    let fixture = "status = \"success\"\nexit_code = 0\nsummary = \"ok\"\n\
                   tool = \"codex\"\n[[artifacts]]\npath = \"x\"\n";
    let parsed = parse_result(fixture.as_bytes()).expect("fixture parses");
    assert_eq!(parsed.status, "success");
    assert_eq!(parsed.summary.as_deref(), Some("ok"));
    assert!(parse_result(b"status = 1\nexit_code = 0").is_err());
    assert!(parse_result(b"exit_code = 0").is_err());
    assert!(parse_result(b"status = \"x\"\nexit_code = 99999999999").is_err());
    assert!(parse_result(b"status = \"x\"\nexit_code =").is_err());
}

#[test]
fn deep_nesting_is_refused_without_recursion() {
    let deep = format!(
        "status = \"ok\"\nexit_code = 0\nx = {}",
        "[".repeat(200_000)
    );
    let err = parse_result(deep.as_bytes()).expect_err("deep nesting is malformed");
    assert!(err.contains("deeper"), "{err}");
}

#[test]
fn packet_and_legacy() {
    let packet = parse_packet(b"exit_code = 143\nstatus = \"signal\"\nreason = \"daemon_sigterm\"")
        .expect("packet parses");
    assert_eq!((packet.exit_code, packet.status.as_str()), (143, "signal"));
    assert_eq!(
        parse_packet(b"exit_code = 0").map(|p| p.status),
        Ok("success".into())
    );
    assert_eq!(parse_legacy(b" 3\n").map(|p| p.exit_code), Ok(3));
    assert!(parse_legacy(b"done").is_err());
}

#[test]
fn load_cached_rereads_only_changed_files() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("daemon.pid");
    let mut cache = None;
    assert_eq!(
        load_cached(&path, parse_pid_file, &mut cache),
        FileState::Absent
    );
    std::fs::write(&path, "42 7\n").expect("write");
    let first = load_cached(&path, parse_pid_file, &mut cache);
    assert_eq!(
        first.value(),
        Some(&PidFile {
            pid: 42,
            starttime: Some(7)
        })
    );
    // A fresh stamp is not trusted: the file is read again.
    let (stamp, _) = cache.clone().expect("cached");
    cache = Some((stamp, FileState::Malformed("stale".into())));
    assert_eq!(load_cached(&path, parse_pid_file, &mut cache), first);
    // Once the stamp is old and unchanged, the cached reading is used.
    cache = Some((stamp, FileState::Malformed("cached".into())));
    let later = SystemTime::now() + std::time::Duration::from_secs(60);
    assert_eq!(
        load_cached_at(&path, parse_pid_file, &mut cache, later),
        FileState::Malformed("cached".into())
    );
    // Replaced by rename: a new inode, read again.
    std::fs::write(dir.path().join("new"), "43\n").expect("write");
    std::fs::rename(dir.path().join("new"), &path).expect("rename");
    let second = load_cached(&path, parse_pid_file, &mut cache);
    assert_eq!(second.value().map(|p| p.pid), Some(43));
    std::fs::remove_file(&path).expect("remove");
    assert_eq!(
        load_cached(&path, parse_pid_file, &mut cache),
        FileState::Absent
    );
    assert!(cache.is_none());
}

#[test]
fn read_bounded_refuses_fifo_dir_and_big_files() {
    let dir = tempfile::tempdir().expect("tempdir");
    let fifo = dir.path().join("fifo");
    rustix::fs::mkfifoat(
        rustix::fs::CWD,
        &fifo,
        rustix::fs::Mode::from_raw_mode(0o600),
    )
    .expect("mkfifo");
    assert!(read_bounded(&fifo).expect_err("fifo").contains("FIFO"));
    assert!(read_bounded(dir.path())
        .expect_err("dir")
        .contains("directory"));
    let big = dir.path().join("big");
    std::fs::write(&big, vec![b'#'; MAX_FILE_BYTES as usize + 1]).expect("write");
    assert!(read_bounded(&big).expect_err("big").contains("larger"));
    assert_eq!(read_bounded(&dir.path().join("none")), Ok(None));
}
