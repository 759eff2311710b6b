use super::*;
use crate::codec::encode_line;
use serde_json::json;

#[test]
fn requests_round_trip_and_bad_ones_keep_their_id() {
    let wait = Request::Wait {
        session: "/s/01J".into(),
        cap_ms: Some(5),
        cwd: Some("/home/u/proj".into()),
    };
    let mut line = wait.line(&RequestId::from(7));
    assert_eq!(line.pop(), Some(b'\n'));
    assert_eq!(parse_request(&line), Ok((RequestId::from(7), wait)));
    let err = parse_request(br#"{"v":1,"id":"a","op":"fly"}"#).expect_err("unknown op");
    assert_eq!(
        (err.id, err.code),
        (RequestId::from_value(&json!("a")), ErrorCode::BadRequest)
    );
    let err = parse_request(br#"{"v":2,"id":3,"op":"ping"}"#).expect_err("v2");
    assert_eq!(err.code, ErrorCode::UnsupportedVersion);
    let err = parse_request(br#"{"v":1,"id":3,"op":"wait","session":"x","cap_ms":-1}"#)
        .expect_err("negative cap");
    assert!(err.message.contains("cap_ms"), "{}", err.message);
    assert!(parse_request(b"[1]").is_err());
    assert!(parse_request(b"\xff\xfe").is_err());
}

#[test]
fn unknown_fields_are_ignored_both_ways() {
    let line = br#"{"v":1,"id":1,"op":"ping","extra":{"x":1}}"#;
    assert_eq!(parse_request(line), Ok((RequestId::from(1), Request::Ping)));
    let reply: Reply =
        serde_json::from_str(r#"{"v":1,"id":1,"event":"pong","new":true}"#).expect("pong");
    assert_eq!(reply.event, Event::Pong);
    let reply: Reply =
        serde_json::from_str(r#"{"v":1,"id":1,"event":"error","code":"brand_new","message":"m"}"#)
            .expect("unknown code");
    assert!(matches!(
        reply.event,
        Event::Error {
            code: ErrorCode::Unknown,
            ..
        }
    ));
}

#[test]
fn ids_are_echoed_as_the_token_sent() {
    let line = br#"{"v":1, "id": 123456789012345678901234567890, "op":"ping"}"#;
    let (id, _) = parse_request(line).expect("parses");
    assert_eq!(id.as_json(), "123456789012345678901234567890");
    let reply = encode_line(&Reply::new(id, Event::Pong));
    assert!(reply.starts_with(br#"{"v":1,"id":123456789012345678901234567890,"#));
    let line = br#"{"v":1,"id":[1, {"a": "b c"}],"op":"cancel","target":[1,{"a":"b c"}]}"#;
    let (id, request) = parse_request(line).expect("parses");
    assert_eq!(id.as_json(), r#"[1,{"a":"b c"}]"#);
    assert_eq!(request, Request::Cancel { target: id });
    let (id, _) = parse_request(br#"{"v":1,"id":1.50,"op":"ping"}"#).expect("parses");
    assert_eq!(id.as_json(), "1.50");
}
