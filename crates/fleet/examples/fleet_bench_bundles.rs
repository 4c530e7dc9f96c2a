//! Writes signed shop bundles for `bench/fleet.sh`: `shop-VERSION.airlift` for each version on
//! the command line, and `vendor.pub`, into the folder given first.
//!
//! `cargo run -p airlift-fleet --example fleet_bench_bundles -- OUT 0.1.0 0.2.0 ...`

use airlift_testkit::bundles::{ShopBundles, ShopVersion};

fn main() -> std::io::Result<()> {
    let mut args = std::env::args_os().skip(1);
    let out = std::path::PathBuf::from(
        args.next()
            .ok_or_else(|| std::io::Error::other("usage: fleet_bench_bundles OUT VERSION..."))?,
    );
    std::fs::create_dir_all(&out)?;
    let bundles = ShopBundles::new(&out)?;
    println!("{}", bundles.public_key()?.display());
    for v in args {
        let v = v.to_string_lossy().into_owned();
        println!("{}", bundles.write(&ShopVersion::new(&v))?.display());
    }
    Ok(())
}
