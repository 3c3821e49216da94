//! Unit tests of the ELF parser: a good image and its segments, then one
//! test per error, each on an image built to show exactly that fault.

use super::image::{Image, LOAD, Phdr, R, W, X};
use super::*;
use crate::mm::paging::{KERNEL_HALF_START, USER_HALF_END};

fn parse(image: &Image) -> Result<(), ElfError> {
    ElfFile::parse(&image.build()).map(|_| ())
}

/// The error of the typical program after `change`.
fn error_after(change: impl FnOnce(&mut Image)) -> ElfError {
    let mut image = Image::program();
    change(&mut image);
    parse(&image).expect_err("the image is broken")
}

fn segment_error(index: usize, error: SegmentError) -> ElfError {
    ElfError::Segment { index, error }
}

#[test]
fn a_typical_program_parses_with_its_segments_in_order() {
    let bytes = Image::program().build();
    let elf = ElfFile::parse(&bytes).unwrap();
    assert_eq!(elf.entry(), VirtAddr::new(0x40_0010));
    assert_eq!(elf.nr_segments(), 2);
    let segs: Vec<Segment> = elf.segments().collect();
    let (code, data) = (segs[0], segs[1]);
    assert_eq!(code.vaddr(), VirtAddr::new(0x40_0000));
    assert_eq!(
        (code.file_size(), code.mem_size(), code.file_offset()),
        (0x200, 0x200, 0x1000)
    );
    assert!(code.is_readable() && code.is_executable() && !code.is_writable());
    assert_eq!(code.vm_flags(), VmFlags::READ | VmFlags::EXEC);
    assert_eq!(code.vma_kind(), VmaKind::Code);
    assert_eq!(data.vm_flags(), VmFlags::READ | VmFlags::WRITE);
    assert_eq!(data.vma_kind(), VmaKind::Data);
    assert_eq!(
        (data.page_start(), data.page_end()),
        (VirtAddr::new(0x40_2000), VirtAddr::new(0x40_5000))
    );
    assert_eq!(data.vma().len(), 0x3000);
    assert_eq!(data.index(), 1);
    assert!(data.contains(VirtAddr::new(0x40_4fff)) && !data.contains(VirtAddr::new(0x40_5000)));
}

#[test]
fn segment_data_is_a_slice_of_the_image_itself() {
    let bytes = Image::program().build();
    let elf = ElfFile::parse(&bytes).unwrap();
    let code = elf.segments().next().unwrap();
    let data = elf.segment_data(&code);
    assert_eq!(data.len(), 0x200);
    assert_eq!(data.as_ptr(), bytes[0x1000..].as_ptr(), "zero-copy");
    assert_eq!(data[0], (0x1000 % 251) as u8);
    assert_eq!(elf.bytes().len(), bytes.len());
}

#[test]
fn other_program_headers_are_skipped_and_a_bss_only_segment_is_fine() {
    let mut image = Image::program();
    image.phdrs.insert(
        0,
        Phdr {
            kind: 6,
            ..Phdr::load(R, 64, 0, 0x70, 0x70)
        },
    ); // PT_PHDR
    image.phdrs.push(Phdr {
        kind: 0x6474_e551,
        ..Phdr::load(R | W, 0, 0, 0, 0)
    }); // GNU_STACK
    image.phdrs.push(Phdr::load(R | W, 0, 0x40_6000, 0, 0x1000));
    let bytes = image.build();
    let elf = ElfFile::parse(&bytes).unwrap();
    let indices: Vec<usize> = elf.segments().map(|s| s.index()).collect();
    assert_eq!(indices, [1, 2, 4]);
    assert_eq!(
        elf.segment_data(&elf.segments().nth(2).unwrap()),
        &[] as &[u8]
    );
}

#[test]
fn short_images_are_truncated() {
    let bytes = Image::program().build();
    for len in [0, 1, 4, 63] {
        assert_eq!(
            ElfFile::parse(&bytes[..len]).err(),
            Some(ElfError::Truncated)
        );
    }
}

#[test]
fn each_bad_header_field_has_its_error() {
    assert_eq!(error_after(|i| i.magic = *b"\x7fELG"), ElfError::BadMagic);
    assert_eq!(error_after(|i| i.class = 1), ElfError::NotElf64(1));
    assert_eq!(error_after(|i| i.data = 2), ElfError::NotLittleEndian(2));
    assert_eq!(error_after(|i| i.ident_version = 0), ElfError::BadVersion);
    assert_eq!(error_after(|i| i.kind = 3), ElfError::NotExecutable(3));
    assert_eq!(error_after(|i| i.machine = 3), ElfError::NotX86_64(3));
    assert_eq!(error_after(|i| i.version = 2), ElfError::BadVersion);
    assert_eq!(error_after(|i| i.ehsize = 52), ElfError::BadHeaderSize(52));
    assert_eq!(
        error_after(|i| i.phentsize = 32),
        ElfError::BadProgramHeaderSize(32)
    );
    assert_eq!(
        error_after(|i| i.phnum = Some(0xffff)),
        ElfError::ExtendedNumbering
    );
}

#[test]
fn a_program_header_table_outside_the_file_is_refused() {
    let bytes = Image::program().build();
    // Table cut short.
    assert_eq!(
        ElfFile::parse(&bytes[..64 + 56 + 10]).err(),
        Some(ElfError::ProgramHeadersOutOfFile)
    );
    assert_eq!(
        error_after(|i| i.phnum = Some(200)),
        ElfError::ProgramHeadersOutOfFile
    );
    // Over the ELF header.
    let mut over_header = bytes.clone();
    over_header[32..40].copy_from_slice(&8u64.to_le_bytes());
    assert_eq!(
        ElfFile::parse(&over_header).err(),
        Some(ElfError::ProgramHeadersOutOfFile)
    );
    // Its end overflows.
    for phoff in [u64::MAX - 60, usize::MAX as u64 - 100] {
        let mut far = bytes.clone();
        far[32..40].copy_from_slice(&phoff.to_le_bytes());
        assert_eq!(
            ElfFile::parse(&far).err(),
            Some(ElfError::ProgramHeadersOutOfFile)
        );
    }
}

#[test]
fn no_load_segment_is_refused() {
    assert_eq!(error_after(|i| i.phdrs.clear()), ElfError::NoLoadSegments);
    assert_eq!(
        error_after(|i| i.phdrs.iter_mut().for_each(|p| p.kind = 4)),
        ElfError::NoLoadSegments
    );
}

#[test]
fn interpreter_and_dynamic_headers_are_refused() {
    for kind in [2, 3] {
        let e = error_after(|i| {
            i.phdrs.push(Phdr {
                kind,
                ..Phdr::load(R, 0, 0, 0, 0)
            })
        });
        assert_eq!(e, ElfError::NeedsDynamicLinking { index: 2 });
    }
}

#[test]
fn file_size_above_memory_size_is_refused() {
    let e = error_after(|i| i.phdrs[1].file_size = 0x3001);
    assert_eq!(e, segment_error(1, SegmentError::FileSizeExceedsMemSize));
}

#[test]
fn file_bytes_beyond_the_image_are_refused() {
    let e = error_after(|i| i.len = Some(0x2000 + 0xff));
    assert_eq!(e, segment_error(1, SegmentError::OutOfFile));
    let e = error_after(|i| {
        i.phdrs[1].offset = 0x10_0000;
        i.len = Some(0x2100);
    });
    assert_eq!(e, segment_error(1, SegmentError::OutOfFile));
}

#[test]
fn overflowing_sums_are_refused() {
    let e = error_after(|i| {
        i.phdrs[1].offset = u64::MAX - 0x10;
        i.len = Some(0x2100);
    });
    assert_eq!(e, segment_error(1, SegmentError::Overflow));
    let e = error_after(|i| i.phdrs[1].vaddr = u64::MAX - 0x10);
    assert_eq!(e, segment_error(1, SegmentError::Overflow));
    // The sum fits but rounding it up to a page does not.
    let e = error_after(|i| {
        i.phdrs[1].vaddr = u64::MAX - 0x3000;
        i.phdrs[1].offset = 0x2000 + 0xfff;
        i.phdrs[1].align = 0;
    });
    assert_eq!(e, segment_error(1, SegmentError::Overflow));
}

#[test]
fn an_empty_segment_is_refused() {
    let e = error_after(|i| {
        i.phdrs[1].file_size = 0;
        i.phdrs[1].mem_size = 0;
    });
    assert_eq!(e, segment_error(1, SegmentError::Empty));
}

#[test]
fn segments_outside_user_memory_are_refused() {
    let place = |vaddr: u64| {
        error_after(|i| {
            i.phdrs[1].vaddr = vaddr;
            i.phdrs[1].align = 0;
        })
    };
    let address = |e| segment_error(1, SegmentError::Address(e));
    assert_eq!(place(KERNEL_HALF_START), address(VmaError::KernelHalf));
    assert_eq!(place(0xffff_ffff_8000_0000), address(VmaError::KernelHalf));
    assert_eq!(
        place(USER_HALF_END - 0x1000),
        address(VmaError::NonCanonical)
    );
    assert_eq!(
        place(USER_HALF_END + 0x1000),
        address(VmaError::NonCanonical)
    );
    assert_eq!(
        place(USER_HALF_END - 0x3000),
        address(VmaError::OutsideUserRange)
    );
    let e = error_after(|i| i.phdrs.insert(0, Phdr::load(R, 0x1000, 0, 0x10, 0x10)));
    assert_eq!(
        e,
        segment_error(0, SegmentError::Address(VmaError::OutsideUserRange))
    );
}

#[test]
fn a_writable_executable_segment_is_refused() {
    let e = error_after(|i| i.phdrs[0].flags = R | W | X);
    assert_eq!(e, segment_error(0, SegmentError::WriteExecute));
}

#[test]
fn misaligned_segments_are_refused() {
    assert_eq!(
        error_after(|i| i.phdrs[1].align = 0x1800),
        segment_error(1, SegmentError::BadAlignment)
    );
    assert_eq!(
        error_after(|i| i.phdrs[1].vaddr = 0x40_2010),
        segment_error(1, SegmentError::BadAlignment)
    );
    // Alignment 0 or 1 asks for nothing.
    let mut image = Image::program();
    image.phdrs[1].vaddr = 0x40_2010;
    image.phdrs[1].align = 1;
    assert_eq!(parse(&image), Ok(()));
}

#[test]
fn segments_out_of_address_order_are_refused() {
    let e = error_after(|i| i.phdrs.swap(0, 1));
    assert_eq!(
        e,
        ElfError::SegmentsOutOfOrder {
            first: 0,
            second: 1
        }
    );
}

#[test]
fn segments_sharing_a_page_are_refused() {
    // Data starts in the page where code ends.
    let e = error_after(|i| {
        i.phdrs[1].vaddr = 0x40_0f00;
        i.phdrs[1].align = 0;
    });
    assert_eq!(
        e,
        ElfError::SegmentsOverlap {
            first: 0,
            second: 1
        }
    );
    let e = error_after(|i| i.phdrs[1].vaddr = 0x40_0000);
    assert_eq!(
        e,
        ElfError::SegmentsOverlap {
            first: 0,
            second: 1
        }
    );
}

#[test]
fn an_entry_outside_every_executable_segment_is_refused() {
    for entry in [0x40_2000, 0x40_0200, 0x3f_ffff, 0] {
        let e = error_after(|i| i.entry = entry);
        assert_eq!(e, ElfError::EntryNotExecutable(VirtAddr::new(entry)));
    }
    let mut image = Image::program();
    image.entry = 0x40_01ff;
    assert_eq!(parse(&image), Ok(()));
}

#[test]
fn errors_display_a_readable_sentence() {
    assert_eq!(
        segment_error(3, SegmentError::WriteExecute).to_string(),
        "segment 3: writable and executable"
    );
    assert_eq!(
        segment_error(1, SegmentError::Address(VmaError::KernelHalf)).to_string(),
        "segment 1: not user memory: range reaches the kernel half"
    );
    assert_eq!(
        ElfError::EntryNotExecutable(VirtAddr::new(0x1234)).to_string(),
        "entry point 0x1234 is in no executable segment"
    );
    assert_eq!(LOAD, 1);
}
