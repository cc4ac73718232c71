//! Free loopback ports for tiers, chosen where no other test's outgoing
//! connection takes them first.

use std::time::Instant;

/// A block of `n` consecutive free loopback ports, below Linux's default
/// ephemeral range (32768–60999) so that no outgoing connection of a test
/// running beside this one takes a port of the block before the tier binds
/// it.
pub fn free_block(n: usize) -> u16 {
    let mut seed = (std::process::id() as u64) << 20
        ^ Instant::now().elapsed().as_nanos() as u64
        ^ std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos() as u64;
    loop {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let base = 20_000 + (seed % (12_700 - n as u64)) as u16;
        let free =
            (0..n as u16).all(|i| std::net::TcpListener::bind(("127.0.0.1", base + i)).is_ok());
        if free {
            return base;
        }
    }
}
