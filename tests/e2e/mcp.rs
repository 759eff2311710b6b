//! `verdict-mcp` driven by a real MCP client: the Python `mcp` SDK from
//! PyPI (`scripts/test` installs it into `target/mcp-venv`), through
//! `tests/e2e/mcp_client.py`.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc;

use serde_json::{json, Value};
use verdict_e2e::{bin, eventually, signal, Harness, DEADLINE};

/// The venv's python, with the `mcp` SDK.
fn python() -> PathBuf {
    let python = bin("verdict")
        .parent()
        .and_then(Path::parent)
        .expect("target dir")
        .join("mcp-venv/bin/python");
    assert!(
        python.is_file(),
        "{} is missing: run `scripts/test --install-only` (it installs the Python mcp SDK there)",
        python.display()
    );
    python
}

/// The MCP client, with `verdict-mcp` as its server.
struct Mcp {
    child: Child,
    stdin: Option<ChildStdin>,
    lines: mpsc::Receiver<Value>,
    /// Lines read while looking for another one.
    held: Vec<Value>,
}

impl Mcp {
    fn start(h: &Harness, extra: &[&str]) -> Mcp {
        let mut command = Command::new(python());
        command
            .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("e2e/mcp_client.py"))
            .arg(bin("verdict-mcp"))
            .arg("--socket")
            .arg(&h.socket)
            .args(extra)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        h.isolate(&mut command);
        let mut child = command.spawn().expect("start the MCP client");
        let stdout = child.stdout.take().expect("stdout");
        let (send, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let value = serde_json::from_str(&line).unwrap_or(Value::String(line));
                if send.send(value).is_err() {
                    break;
                }
            }
        });
        let stdin = child.stdin.take();
        Mcp {
            child,
            stdin,
            lines,
            held: Vec::new(),
        }
    }

    fn send(&mut self, command: Value) {
        let stdin = self.stdin.as_mut().expect("client running");
        writeln!(stdin, "{command}").expect("write to the MCP client");
        stdin.flush().expect("flush");
    }

    /// The next line for which `wanted` holds.
    fn recv(&mut self, wanted: impl Fn(&Value) -> bool) -> Value {
        if let Some(i) = self.held.iter().position(&wanted) {
            return self.held.remove(i);
        }
        loop {
            let line = self
                .lines
                .recv_timeout(DEADLINE)
                .expect("an answer from the MCP client in time");
            if wanted(&line) {
                return line;
            }
            self.held.push(line);
        }
    }

    /// Calls `tool` and returns its answer line.
    fn call(&mut self, tag: &str, tool: &str, args: Value) -> Value {
        self.start_call(tag, tool, args);
        self.answer(tag)
    }

    fn start_call(&mut self, tag: &str, tool: &str, args: Value) {
        self.send(json!({"op": "call", "tag": tag, "tool": tool, "args": args}));
    }

    fn answer(&mut self, tag: &str) -> Value {
        self.recv(|line| line["tag"] == tag)
    }
}

impl Drop for Mcp {
    fn drop(&mut self) {
        drop(self.stdin.take());
        if !matches!(self.child.try_wait(), Ok(Some(_))) {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }
}

fn waiters(h: &Harness, n: u64) {
    h.wait_for_waiters(n);
}

#[test]
fn the_tools_are_listed_with_their_schemas() {
    let h = Harness::start();
    let mut mcp = Mcp::start(&h, &[]);
    mcp.send(json!({"op": "list"}));
    let listed = mcp.recv(|line| line.get("tools").is_some());
    let tools = listed["tools"].as_array().expect("tools");
    let names: Vec<&str> = tools.iter().filter_map(|t| t["name"].as_str()).collect();
    assert_eq!(names.len(), 2, "{listed}");
    assert!(
        names.contains(&"wait") && names.contains(&"status"),
        "{listed}"
    );
    let wait = tools.iter().find(|t| t["name"] == "wait").expect("wait");
    let properties = &wait["input"]["properties"];
    for field in ["sessions", "mode", "timeout_seconds"] {
        assert!(properties.get(field).is_some(), "{field}: {wait}");
    }
    assert!(
        wait["description"]
            .as_str()
            .unwrap_or("")
            .contains("still_running"),
        "{wait}"
    );
}

#[test]
fn wait_answers_finished_failing_live_and_several_sessions() {
    let h = Harness::start();
    let done = h.session("01JMCPDONE");
    done.write_stdout();
    done.write_result("success", 0);
    let failed = h.session("01JMCPFAILED");
    failed.write_result("failure", 3);
    let mut live = h.session("01JMCPLIVE");
    live.start_process();
    let mut mcp = Mcp::start(&h, &[]);

    let answer = mcp.call("done", "wait", json!({"sessions": [done.path()]}));
    assert_eq!(answer["is_error"], false, "{answer}");
    let result = &answer["structured"];
    assert_eq!(
        (result["done"].clone(), result["exit_code"].clone()),
        (json!(true), json!(0)),
        "{result}"
    );
    let session = &result["sessions"][0];
    assert_eq!(session["outcome"], "completed", "{result}");
    assert_eq!(session["status"], "success");
    assert_eq!(session["output"]["tail"], "some output\n", "{result}");
    assert_eq!(session["output"]["truncated"], false);

    let answer = mcp.call("failed", "wait", json!({"sessions": ["01JMCPFAILED"]}));
    let session = &answer["structured"]["sessions"][0];
    assert_eq!(
        (
            session["exit_code"].clone(),
            session["wait_exit_code"].clone()
        ),
        (json!(3), json!(1)),
        "{answer}"
    );
    assert_eq!(answer["structured"]["exit_code"], 1);

    let args = json!({"sessions": [live.path()], "timeout_seconds": 0.3});
    let answer = mcp.call("live", "wait", args);
    let result = &answer["structured"];
    assert_eq!(result["done"], false, "{result}");
    assert_eq!(result["exit_code"], 0);
    assert_eq!(result["sessions"][0]["outcome"], "alive", "{result}");
    assert_eq!(result["still_running"], json!(["01JMCPLIVE"]));
    assert!(
        result["next"]
            .as_str()
            .unwrap_or("")
            .contains("call wait again"),
        "{result}"
    );

    let args = json!({"sessions": [done.path(), failed.path()], "mode": "all"});
    let answer = mcp.call("all", "wait", args);
    let result = &answer["structured"];
    assert_eq!(
        (result["done"].clone(), result["exit_code"].clone()),
        (json!(true), json!(1)),
        "{result}"
    );

    let args =
        json!({"sessions": [live.path(), done.path()], "mode": "any", "timeout_seconds": 10});
    let answer = mcp.call("any", "wait", args);
    let result = &answer["structured"];
    assert_eq!(result["done"], true, "{result}");
    assert_eq!(result["sessions"][0]["outcome"], "pending", "{result}");
    assert_eq!(result["sessions"][1]["outcome"], "completed", "{result}");
    assert_eq!(result["still_running"].as_array().map(Vec::len), Some(1));
    // `any` left nothing behind at the daemon.
    waiters(&h, 0);
    live.end_process();
}

#[test]
fn cancelling_a_call_or_leaving_drops_the_waits_at_the_daemon() {
    let h = Harness::start();
    let mut live = h.session("01JMCPCANCEL");
    live.start_process();
    let mut mcp = Mcp::start(&h, &[]);
    mcp.start_call(
        "long",
        "wait",
        json!({"sessions": [live.path()], "timeout_seconds": 40}),
    );
    waiters(&h, 1);
    mcp.send(json!({"op": "cancel", "tag": "long"}));
    let answer = mcp.answer("long");
    assert_eq!(answer["cancelled"], true, "{answer}");
    waiters(&h, 0);

    // The status tool lists the session while a wait is on it.
    mcp.start_call(
        "again",
        "wait",
        json!({"sessions": [live.path()], "timeout_seconds": 40}),
    );
    waiters(&h, 1);
    let status = mcp.call("status", "status", json!({}));
    let watched = &status["structured"]["watched"];
    assert_eq!(watched[0]["session"], "01JMCPCANCEL", "{status}");
    assert_eq!(status["structured"]["waiters"], 1, "{status}");

    // The client goes away mid-call: the server ends and so does the wait.
    signal(mcp.child.id() as i32, rustix::process::Signal::KILL);
    waiters(&h, 0);
    eventually("verdict-mcp to exit", || {
        verdict_e2e::processes_of("verdict-mcp", &h.socket)
            .is_empty()
            .then_some(())
    });
    live.end_process();
}

#[test]
fn bad_input_is_a_tool_error_that_says_what_is_wrong() {
    let h = Harness::start();
    let mut mcp = Mcp::start(&h, &["--max-timeout", "5"]);
    let too_many: Vec<String> = (0..65).map(|i| format!("01JS{i}")).collect();
    let cases = [
        (
            json!({"sessions": ["01JNOSUCHSESSION"]}),
            "01JNOSUCHSESSION",
        ),
        (json!({"sessions": too_many}), "too many sessions (65)"),
        (json!({"sessions": []}), "sessions is empty"),
        (
            json!({"sessions": ["x"], "timeout_seconds": 60}),
            "at most 5",
        ),
        (
            json!({"sessions": ["x"], "timeout_seconds": -1}),
            "out of range",
        ),
        (json!({"sessions": ["x"], "mode": "some"}), "some"),
    ];
    for (i, (args, says)) in cases.iter().enumerate() {
        let answer = mcp.call(&format!("bad{i}"), "wait", args.clone());
        let text = format!("{} {}", answer["text"], answer["exception"]);
        assert!(
            answer["is_error"] == true || answer.get("exception").is_some(),
            "{args}: {answer}"
        );
        assert!(text.contains(says), "{args}: {answer}");
    }
    // Still serving.
    let status = mcp.call("status", "status", json!({}));
    assert_eq!(status["is_error"], false, "{status}");
}

/// `target/node-mcp/node_modules`, where `scripts/test` installs the
/// TypeScript MCP SDK and Ajv.
fn node_modules() -> PathBuf {
    let modules = bin("verdict")
        .parent()
        .and_then(Path::parent)
        .expect("target dir")
        .join("node-mcp/node_modules");
    assert!(
        modules.join("@modelcontextprotocol/sdk").is_dir() && modules.join("ajv").is_dir(),
        "{} lacks the TypeScript MCP SDK or Ajv: run `scripts/test --install-only`",
        modules.display()
    );
    modules
}

#[test]
fn the_typescript_sdk_validates_every_schema_and_result_strictly_waits_and_cancels() {
    let h = Harness::start();
    let done = verdict_e2e::Session::ended(&h, "01JTSDONE");
    done.write_result("success", 0);
    let failed = verdict_e2e::Session::ended(&h, "01JTSFAILED");
    failed.write_result("failure", 3);
    let mut live = h.session("01JTSLIVE");
    live.start_process();
    let mut live2 = h.session("01JTSLIVE2");
    live2.start_process();
    let mut command = Command::new("node");
    command
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("e2e/mcp_sdk.mjs"))
        .env("NODE_MCP_MODULES", node_modules())
        .env("VERDICT_MCP", bin("verdict-mcp"))
        .env("VERDICT_SOCKET", &h.socket)
        .env("DONE", done.path())
        .env("FAILED", failed.path())
        .env("LIVE", live.path())
        .env("LIVE2", live2.path())
        .stdin(Stdio::null());
    let out = verdict_e2e::output_within_for(command, std::time::Duration::from_secs(120));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("\"ok\":true"), "{stdout}");
    live.end_process();
    live2.end_process();
}

#[test]
fn closing_stdin_mid_wait_stops_the_waits_and_the_server() {
    let h = Harness::start();
    let mut live = h.session("01JMCPSTDIN");
    live.start_process();
    let mut command = Command::new(bin("verdict-mcp"));
    command
        .arg("--socket")
        .arg(&h.socket)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    h.isolate(&mut command);
    let mut server = command.spawn().expect("start verdict-mcp");
    let mut stdin = server.stdin.take().expect("stdin");
    let mut stdout = BufReader::new(server.stdout.take().expect("stdout"));
    let send = |stdin: &mut ChildStdin, message: Value| {
        writeln!(stdin, "{message}").expect("write");
    };
    send(
        &mut stdin,
        json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-06-18", "capabilities": {},
        "clientInfo": {"name": "e2e", "version": "1"}}}),
    );
    let mut line = String::new();
    stdout.read_line(&mut line).expect("initialize reply");
    assert!(line.contains("\"result\""), "{line}");
    send(
        &mut stdin,
        json!({"jsonrpc": "2.0", "method": "notifications/initialized"}),
    );
    send(
        &mut stdin,
        json!({"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {
        "name": "wait", "arguments": {"sessions": [live.path()], "timeout_seconds": 40}}}),
    );
    waiters(&h, 1);
    drop(stdin);
    let status = verdict_e2e::finish_within(&mut server, DEADLINE).status;
    assert!(status.success(), "verdict-mcp exited with {status}");
    waiters(&h, 0);
    live.end_process();
}
