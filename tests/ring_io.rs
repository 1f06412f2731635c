//! The network ring under the traffic connections (`server.io = "ring"`, the default):
//! bytes that arrive in pieces, pipelined requests, a request spread over several
//! receive buffers, the receive buffers running out under load, a client that stops
//! reading, and the same traffic with `io = "poll"`.

mod common;

use std::io::{Read, Write};
use std::time::{Duration, Instant};

use common::{Conn, Options, Server, TempDir};
use serde_json::{json, Value};

/// One shard with the given I/O and receive buffers, serving the sample campaigns
/// without their budgets, pacing and caps, so that every request here gets a bid
/// (whose `id` shows which request it answers).
fn server(io: &str, buffers: u16, buffer_bytes: u32) -> (Server, TempDir) {
    server_with(io, buffers, buffer_bytes, "")
}

/// [`server`] with more configuration appended (whole sections).
fn server_with(io: &str, buffers: u16, buffer_bytes: u32, more: &str) -> (Server, TempDir) {
    let dir = TempDir::new("ring-io");
    let mut set: Value = serde_json::from_slice(
        &std::fs::read(common::root().join("config/campaigns.json")).unwrap(),
    )
    .unwrap();
    for c in set["campaigns"].as_array_mut().unwrap() {
        let c = c.as_object_mut().unwrap();
        for key in ["budget", "pacing", "frequency_cap"] {
            c.remove(key);
        }
    }
    let campaigns = dir.0.join("campaigns.json");
    std::fs::write(&campaigns, serde_json::to_vec(&set).unwrap()).unwrap();
    let server = Server::start_with(Options {
        config: Some(format!(
            "[server]\nio = \"{io}\"\nrecv_buffers = {buffers}\nrecv_buffer_bytes = {buffer_bytes}\n{more}"
        )),
        campaigns: Some(campaigns),
        shards: 1,
        ..Options::default()
    });
    (server, dir)
}

/// A bid request the sample campaigns bid on, padded with an unknown field to about
/// `size` bytes.
fn request(id: &str, size: usize) -> Vec<u8> {
    let with_pad = |pad: usize| {
        serde_json::to_vec(&json!({
            "id": id,
            "imp": [{"id": "1", "banner": {"w": 300, "h": 250}, "bidfloor": 0.5}],
            "site": {"domain": "news.example.com"},
            // A debug build under this load can take longer than the default deadline.
            "tmax": 5000,
            "ext": {"pad": "x".repeat(pad)},
        }))
        .unwrap()
    };
    with_pad(size.saturating_sub(with_pad(0).len()))
}

fn raw_request(body: &[u8]) -> Vec<u8> {
    let mut req = format!(
        "POST /openrtb2/bid HTTP/1.1\r\nhost: test\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    req.extend_from_slice(body);
    req
}

/// Sends `n` requests of about `size` bytes (ids `{prefix}0`, `{prefix}1`, ...) in one
/// write, then reads an answer for each.
fn pipelined(conn: &mut Conn, prefix: &str, n: usize, size: usize) -> Vec<common::Response> {
    let mut batch = Vec::new();
    for i in 0..n {
        batch.extend(raw_request(&request(&format!("{prefix}{i}"), size)));
    }
    conn.stream.write_all(&batch).unwrap();
    (0..n)
        .map(|_| conn.read_response().expect("an answer for every request"))
        .collect()
}

fn metric_sum(server: &Server, name: &str) -> u64 {
    server.per_shard(name).iter().sum()
}

#[test]
fn a_request_that_arrives_in_pieces_is_answered_once_whole() {
    let (server, _dir) = server("ring", 1024, 4096);
    let mut conn = server.conn();
    let bytes = raw_request(&request("pieces", 700));
    for piece in bytes.chunks(37) {
        conn.stream.write_all(piece).unwrap();
        std::thread::sleep(Duration::from_millis(2));
    }
    let resp = conn.read_response().expect("an answer");
    assert_eq!(resp.status, 200);
    assert_eq!(resp.json()["id"], "pieces");
    // The connection goes on serving.
    let resp = conn.post("/openrtb2/bid", &request("after", 600));
    assert_eq!(resp.json()["id"], "after");
}

#[test]
fn pipelined_requests_get_their_answers_in_order() {
    let (server, _dir) = server("ring", 1024, 4096);
    let mut conn = server.conn();
    for (i, resp) in pipelined(&mut conn, "p", 8, 600).iter().enumerate() {
        assert_eq!(resp.status, 200, "request {i}");
        assert_eq!(resp.json()["id"], format!("p{i}"), "in order");
    }
}

#[test]
fn a_request_larger_than_a_receive_buffer_spans_several() {
    // 512-byte buffers: a 6 KB request lands in a dozen of them.
    let (server, _dir) = server("ring", 64, 512);
    let mut conn = server.conn();
    for i in 0..20 {
        let id = format!("big-{i}");
        let resp = conn.post("/openrtb2/bid", &request(&id, 6000));
        assert_eq!(resp.status, 200, "{}", resp.text());
        assert_eq!(resp.json()["id"], id);
    }
}

#[test]
fn running_out_of_receive_buffers_slows_arrivals_and_loses_nothing() {
    // Eight 512-byte buffers for 16 connections sending 3 KB requests at once: the
    // buffers run out over and over.
    let (server, _dir) = server("ring", 8, 512);
    let addr = server.traffic;
    let clients: Vec<_> = (0..16)
        .map(|c| {
            std::thread::spawn(move || {
                let mut conn = Conn::open(addr);
                for i in 0..40 {
                    let id = format!("c{c}-{i}");
                    // Two pipelined requests per round trip, so that more arrives than
                    // one buffer holds.
                    let mut two = raw_request(&request(&id, 3000));
                    two.extend(raw_request(&request(&format!("{id}b"), 3000)));
                    conn.stream.write_all(&two).unwrap();
                    for want in [id.clone(), format!("{id}b")] {
                        let resp = conn.read_response().expect("an answer");
                        assert_eq!(resp.status, 200);
                        assert_eq!(resp.json()["id"], want);
                    }
                }
            })
        })
        .collect();
    for c in clients {
        c.join().expect("every request answered, in order");
    }
    let deadline = Instant::now() + Duration::from_secs(3);
    let exhausted = loop {
        let n = metric_sum(&server, "shardbid_shard_ring_buffer_exhaustions_total");
        if n > 0 || Instant::now() > deadline {
            break n;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(exhausted > 0, "the test ran the buffers out");
    assert!(metric_sum(&server, "shardbid_shard_ring_rearms_total") >= exhausted);
    // Good traffic is served as before.
    let resp = server.bid(&request("after", 600));
    assert_eq!(resp.json()["id"], "after");
}

#[test]
fn a_client_that_stops_reading_holds_back_only_itself() {
    let (server, _dir) = server("ring", 64, 4096);
    // This client sends requests and never reads: its answers pile up in its socket,
    // then in the server's queue, until the server stops taking its requests.
    let mut greedy = std::net::TcpStream::connect(server.traffic).unwrap();
    greedy.set_nodelay(true).unwrap();
    greedy
        .set_write_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let one = raw_request(&request("greedy", 2000));
    let mut sent = 0usize;
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(3) {
        match greedy.write(&one) {
            Ok(n) => sent += n,
            Err(_) => break, // the server stopped reading it: back-pressure
        }
    }
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "the server kept reading a client that reads nothing ({sent} bytes)"
    );
    // Its unread bytes left the shared buffers.
    let deadline = Instant::now() + Duration::from_secs(2);
    while metric_sum(&server, "shardbid_shard_ring_spills_total") == 0 {
        assert!(Instant::now() < deadline, "no spill counted");
        std::thread::sleep(Duration::from_millis(20));
    }
    // Meanwhile everyone else is served.
    let mut conn = server.conn();
    for i in 0..20 {
        let resp = conn.post("/openrtb2/bid", &request(&format!("ok-{i}"), 600));
        assert_eq!(resp.json()["id"], format!("ok-{i}"));
    }
    // The greedy client still gets its answers, in order, once it reads.
    greedy
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let mut head = [0u8; 12];
    greedy.read_exact(&mut head).unwrap();
    assert_eq!(&head, b"HTTP/1.1 200");
}

#[test]
fn a_client_cut_off_with_answers_unsent_is_closed_after_the_linger() {
    // Timeouts short enough that the server gives up on a client that reads nothing.
    let (server, _dir) = server_with(
        "ring",
        64,
        4096,
        "[http]\nheader_read_timeout_ms = 300\nkeep_alive_timeout_ms = 300\n",
    );
    // A small receive buffer, so that the server's answers back up soon.
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    socket.connect(&server.traffic.into()).unwrap();
    let mut greedy: std::net::TcpStream = socket.into();
    greedy
        .set_write_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    let one = raw_request(&request("greedy", 2000));
    // Requests until the server stops reading them (however slow the build).
    let started = Instant::now();
    while greedy.write_all(&one).is_ok() {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "the server kept reading a client that reads nothing"
        );
    }
    // The server cuts it off while answers are still queued for it, and, with the
    // shard otherwise idle, cancels their send and closes the descriptor once the
    // linger (5 s) is over.
    let deadline = Instant::now() + Duration::from_secs(30);
    while metric_sum(&server, "shardbid_shard_ring_linger_cancels_total") == 0 {
        assert!(
            Instant::now() < deadline,
            "a cut-off connection still holds its descriptor"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    // The client sees the end of the connection after the answers that did leave.
    greedy
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let mut rest = Vec::new();
    let _ = greedy.read_to_end(&mut rest); // EOF or a reset, not a hang
    server.conn().post("/openrtb2/bid", &request("after", 600));
}

#[test]
fn poll_io_serves_the_same_traffic() {
    let (server, _dir) = server("poll", 1024, 4096);
    let mut conn = server.conn();
    for (i, resp) in pipelined(&mut conn, "poll-", 4, 3000).iter().enumerate() {
        assert_eq!(resp.json()["id"], format!("poll-{i}"));
    }
    assert_eq!(
        metric_sum(&server, "shardbid_shard_ring_rearms_total"),
        0,
        "no ring with io = \"poll\""
    );
}
