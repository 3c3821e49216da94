//! Exercises mmap and demand paging: maps anonymous regions of a few pages,
//! writes only every third page (so only those become resident), checks
//! what it wrote, keeps the mapping a moment for observers, unmaps it.
#![no_std]
#![no_main]

use ulib::mapping::{Mapping, PAGE_SIZE};
use ulib::rand::Rng;
use ulib::{println, sys};

ulib::entry!(main);

/// Milliseconds a mapping is kept before it is unmapped.
const HOLD_MS: u64 = 100;
/// Rounds between two status lines.
const REPORT_EVERY: u64 = 20;

/// The word written at the start of page `page` in round `round`.
fn pattern(round: u64, page: u64) -> u64 {
    0x6d6d_6170_0000_0000 ^ (round << 16) ^ page
}

fn main() -> i64 {
    let _ = sys::register_program_name("mmapper");
    let mut rng = Rng::from_entropy();
    let mut failures = 0u64;
    for round in 1u64.. {
        let nr_pages = rng.range(4, 32);
        let map = match Mapping::anonymous(nr_pages) {
            Ok(map) => map,
            Err(e) => {
                println!("mmapper: mmap of {nr_pages} pages failed: {}", e.name());
                failures += 1;
                let _ = sys::sleep_ms(HOLD_MS);
                continue;
            }
        };
        let touched = (0..nr_pages).step_by(3);
        for page in touched.clone() {
            map.write_u64(page * PAGE_SIZE, pattern(round, page));
        }
        for page in touched.clone() {
            let found = map.read_u64(page * PAGE_SIZE);
            if found != pattern(round, page) {
                println!(
                    "mmapper: FAIL page {page} of {:#x}: {found:#x} != {:#x}",
                    map.addr(),
                    pattern(round, page)
                );
                failures += 1;
            }
        }
        if round.is_multiple_of(REPORT_EVERY) {
            println!(
                "mmapper: round={round} addr={:#x} pages={nr_pages} touched={} failures={failures}",
                map.addr(),
                touched.count()
            );
        }
        let _ = sys::sleep_ms(HOLD_MS);
        drop(map);
    }
    0
}
