//! A panic caught at its own C boundary, so the program shows that this library's
//! unwinding still works with libmulticast's copy of Rust's runtime linked beside it.

/// Returns `x`, or -1 when `x` is positive, after a panic caught inside.
#[no_mangle]
pub extern "C" fn neighbour_answer(x: i32) -> i32 {
    std::panic::catch_unwind(|| if x > 0 { panic!("neighbour panicked on purpose") } else { x })
        .unwrap_or(-1)
}
