use std::time::Instant;
use hcontainer_testbed::{BootOptions, NodeImage};
#[test]
fn measure_clean_build() {
    let cache = std::path::PathBuf::from("/tmp/vm-clean-cache");
    let _ = std::fs::remove_dir_all(&cache);
    std::fs::create_dir_all(&cache).unwrap();
    let s = Instant::now();
    let image = NodeImage::build(&cache).unwrap();
    eprintln!("clean build {:?}", s.elapsed());
    let s = Instant::now();
    let image2 = NodeImage::build(&cache).unwrap();
    eprintln!("cached build {:?}", s.elapsed());
    let node = image2.boot(&BootOptions::default()).unwrap();
    eprintln!("boot {:?}", node.boot_time());
    drop(image);
}
