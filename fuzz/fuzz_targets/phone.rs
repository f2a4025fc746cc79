//! What baresip's control connection carries (netstring frames of JSON, from a process that
//! reads the network) and what the kiosk page sends: any bytes, never a panic, the decoder's
//! buffer bounded, and the phone's state consistent after every event.
#![no_main]
use homestick_session::ctrl::{self, Decoder, Message, MAX_FRAME};
use homestick_session::phone::{Phone, Request, HISTORY};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // The first byte splits the input: the control stream, then a page request.
    let (split, rest) = match data.split_first() {
        Some((s, r)) => (*s as usize % (r.len() + 1), r),
        None => return,
    };
    let (stream, page) = rest.split_at(split);
    let mut phone = Phone::default();
    let mut d = Decoder::default();
    for (i, chunk) in stream.chunks(7).enumerate() {
        d.push(chunk);
        loop {
            match d.next_frame() {
                Ok(Some(f)) => {
                    assert!(f.len() <= MAX_FRAME);
                    match ctrl::parse(&f) {
                        Ok(Message::Event(e)) => phone.event(e, i as u64),
                        Ok(Message::Response { ok, data, token }) => phone.response(&token, ok, &data),
                        _ => {}
                    }
                    let _ = ctrl::reginfo(&String::from_utf8_lossy(&f));
                }
                Ok(None) => break,
                Err(_) => return,
            }
        }
        assert!(phone.history.len() <= HISTORY);
    }
    if let Ok(r) = serde_json::from_slice::<Request>(page) {
        if let Ok(cmd) = phone.request(r, 0) {
            assert!(!cmd.encode().is_empty());
        }
    }
});
