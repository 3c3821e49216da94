//! Demand paging, deterministically, for the QEMU tests: maps 64 anonymous
//! pages, writes one word to each of pages 0, 5, 17 and 63 and nothing
//! else, prints `demandtest: touched 4 of 64` and sleeps forever, so the
//! test can check that exactly those pages of the VMA are resident.
#![no_std]
#![no_main]

use ulib::mapping::{Mapping, PAGE_SIZE};
use ulib::{println, sys};

ulib::entry!(main);

/// Pages mapped.
const NR_PAGES: u64 = 64;
/// The pages written.
const TOUCHED: [u64; 4] = [0, 5, 17, 63];

fn main() -> i64 {
    let _ = sys::register_program_name("demandtest");
    let map = match Mapping::anonymous(NR_PAGES) {
        Ok(map) => map,
        Err(e) => {
            println!("demandtest: FAIL mmap: {}", e.name());
            return 1;
        }
    };
    for page in TOUCHED {
        map.write_u64(page * PAGE_SIZE, 0xd3ad_0000 + page);
    }
    println!(
        "demandtest: mapped {:#x}..{:#x}",
        map.addr(),
        map.addr() + map.len()
    );
    println!("demandtest: touched {} of {NR_PAGES}", TOUCHED.len());
    sys::sleep_forever()
}
