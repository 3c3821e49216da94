//! Property tests of the ELF parser: random bytes, and valid images with
//! random fields overwritten, bytes flipped or the end cut off, never make
//! it panic, and whatever it accepts keeps every promise of
//! [`ElfFile::parse`].

use proptest::prelude::*;

use super::image::{Image, Phdr, R, W, X};
use super::*;
use crate::mm::vma::{USER_END, USER_START};

/// Checks what an accepted image promises.
fn check_accepted(bytes: &[u8]) -> Result<(), TestCaseError> {
    let Ok(elf) = ElfFile::parse(bytes) else {
        return Ok(());
    };
    let segments: Vec<Segment> = elf.segments().collect();
    prop_assert_eq!(segments.len(), elf.nr_segments());
    prop_assert!(!segments.is_empty());
    for s in &segments {
        prop_assert!(s.file_size() <= s.mem_size() && s.mem_size() > 0);
        prop_assert!(s.file_offset() + s.file_size() <= bytes.len() as u64);
        prop_assert_eq!(elf.segment_data(s).len() as u64, s.file_size());
        prop_assert!(s.page_start().as_u64() >= USER_START && s.page_end().as_u64() <= USER_END);
        prop_assert!(!(s.is_writable() && s.is_executable()));
        prop_assert_eq!(
            s.vma().len(),
            s.page_end().as_u64() - s.page_start().as_u64()
        );
    }
    for pair in segments.windows(2) {
        prop_assert!(pair[0].page_end() <= pair[1].page_start());
    }
    prop_assert!(
        segments
            .iter()
            .any(|s| s.is_executable() && s.contains(elf.entry()))
    );
    Ok(())
}

/// A valid image with one to four segments of random sizes and flags.
fn valid_image() -> impl Strategy<Value = Image> {
    let segment = (1..4_u64, 0..0x3000_u64, 0..3_u32, 1..3_u64);
    (proptest::collection::vec(segment, 1..4), 0..0x200_u64).prop_map(|(segs, entry_off)| {
        let mut image = Image::program();
        image.phdrs.clear();
        let mut vaddr = 0x40_0000;
        let mut offset = 0x1000;
        for (i, (pages, extra, flags, gap)) in segs.into_iter().enumerate() {
            let flags = if i == 0 {
                R | X
            } else {
                [R, R | W, R | X][flags as usize]
            };
            let mem = pages * 0x1000;
            let file = (mem - 0x800).min(extra);
            image
                .phdrs
                .push(Phdr::load(flags, offset, vaddr, file, mem));
            vaddr += (pages + gap) * 0x1000;
            offset += pages * 0x1000;
        }
        image.entry = 0x40_0000 + entry_off;
        image
    })
}

/// A change to a valid image.
#[derive(Debug, Clone)]
enum Damage {
    /// Writes this little-endian value of this many bytes at this offset.
    Write { at: usize, value: u64, width: usize },
    /// XORs a byte.
    Flip { at: usize, mask: u8 },
    /// Cuts the image to this length.
    Cut(usize),
}

fn damage() -> impl Strategy<Value = Damage> {
    let value = prop_oneof![
        any::<u64>(),
        Just(0_u64),
        Just(u64::MAX),
        Just(1 << 47),
        Just(0xffff_8000_0000_0000),
        (0..0x10_000_u64),
    ];
    prop_oneof![
        (
            0..400_usize,
            value,
            prop_oneof![Just(1_usize), Just(2), Just(4), Just(8)]
        )
            .prop_map(|(at, value, width)| Damage::Write { at, value, width }),
        (0..0x6000_usize, 1..=255_u8).prop_map(|(at, mask)| Damage::Flip { at, mask }),
        (0..0x6000_usize).prop_map(Damage::Cut),
    ]
}

fn apply(bytes: &mut Vec<u8>, damage: &Damage) {
    match *damage {
        Damage::Write { at, value, width } => {
            for (i, b) in value.to_le_bytes()[..width].iter().enumerate() {
                if let Some(slot) = bytes.get_mut(at + i) {
                    *slot = *b;
                }
            }
        }
        Damage::Flip { at, mask } => {
            if let Some(slot) = bytes.get_mut(at) {
                *slot ^= mask;
            }
        }
        Damage::Cut(len) => bytes.truncate(len),
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1024))]

    #[test]
    fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
        check_accepted(&bytes)?;
    }

    #[test]
    fn random_bytes_behind_a_good_header_never_panic(
        tail in proptest::collection::vec(any::<u8>(), 0..600),
        phnum in 0..12_u16,
    ) {
        let mut bytes = Image::program().build()[..64].to_vec();
        bytes[56..58].copy_from_slice(&phnum.to_le_bytes());
        bytes.extend(tail);
        check_accepted(&bytes)?;
    }

    #[test]
    fn valid_images_parse_and_keep_their_promises(image in valid_image()) {
        let bytes = image.build();
        prop_assert!(ElfFile::parse(&bytes).is_ok(), "{:?}", ElfFile::parse(&bytes).err());
        check_accepted(&bytes)?;
    }

    #[test]
    fn damaged_images_never_panic_and_what_parses_is_sound(
        image in valid_image(),
        damages in proptest::collection::vec(damage(), 1..4),
    ) {
        let mut bytes = image.build();
        for d in &damages {
            apply(&mut bytes, d);
        }
        check_accepted(&bytes)?;
    }
}
