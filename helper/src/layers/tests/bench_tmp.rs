#[test]
#[ignore]
fn bench_unpack() {
    let blob = std::env::var("BERTH_BENCH_BLOB").unwrap();
    let out = std::path::PathBuf::from(std::env::var("BERTH_BENCH_OUT").unwrap());
    let _ = std::fs::remove_dir_all(&out);
    std::fs::create_dir_all(&out).unwrap();
    let f = std::io::BufReader::with_capacity(256 * 1024, std::fs::File::open(blob).unwrap());
    let t = std::time::Instant::now();
    let r = crate::layers::unpack(f, &out, &[], &Default::default(), &super::NO_CANCEL).unwrap();
    eprintln!("unpack: {:?} {:?}", t.elapsed(), r);
}

#[test]
#[ignore]
fn bench_gz() {
    use std::io::Read;
    let blob = std::env::var("BERTH_BENCH_BLOB").unwrap();
    for chunk in [512usize, 128 * 1024] {
        let f = std::io::BufReader::with_capacity(256 * 1024, std::fs::File::open(&blob).unwrap());
        let mut d = flate2::bufread::MultiGzDecoder::new(f);
        let mut buf = vec![0u8; chunk];
        let t = std::time::Instant::now();
        let mut n = 0;
        loop {
            let k = d.read(&mut buf).unwrap();
            if k == 0 {
                break;
            }
            n += k;
        }
        eprintln!("gz chunk {chunk}: {n} in {:?}", t.elapsed());
    }
    let f = std::io::BufReader::with_capacity(256 * 1024, std::fs::File::open(&blob).unwrap());
    let stopped = std::cell::Cell::new(None);
    let t = std::time::Instant::now();
    let tally = crate::layers::stream::Tally::new(
        crate::layers::stream::decompress(f).unwrap(),
        &Default::default(),
        &super::NO_CANCEL,
        &stopped,
    );
    let r = tally.finish().unwrap();
    eprintln!("tally: {:?} in {:?}", r, t.elapsed());
}
