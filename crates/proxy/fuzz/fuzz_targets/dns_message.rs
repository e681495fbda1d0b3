//! DNS messages: parsing never panics or loops, what an answer tells can be
//! read from anything that parses, and the error answer to a query parses
//! back with the query's id and questions.
#![no_main]

use libfuzzer_sys::fuzz_target;
use proxy::dns::answer::summarize;
use proxy::dns::wire::{error_response, parse, RCODE_REFUSED};

fuzz_target!(|data: &[u8]| {
    let Ok(message) = parse(data) else {
        return;
    };
    let _ = summarize(&message);
    let answer = error_response(data, &message, RCODE_REFUSED);
    let parsed = parse(&answer).expect("the error answer parses");
    assert_eq!(parsed.header.id, message.header.id);
    assert_eq!(parsed.questions, message.questions);
});
