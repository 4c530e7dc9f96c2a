//! The support bundle's tar.gz: one folder `airlift-support-RELEASE/` of regular files, mode
//! 0644, readable by any `tar`. Written to a temporary file beside the target and renamed, so an
//! interrupted run never leaves a truncated archive under the requested name.

use std::io::Write;
use std::path::Path;

use flate2::write::GzEncoder;
use flate2::Compression;

use super::{SupportBundle, SupportError};

/// Writes `bundle` to `path`; returns the archive's size.
pub(super) fn write(bundle: &SupportBundle, path: &Path) -> Result<u64, SupportError> {
    let fail = |source: std::io::Error| SupportError::Write {
        path: path.to_path_buf(),
        source,
    };
    let mut tmp_name = path.file_name().unwrap_or_default().to_os_string();
    tmp_name.push(".partial");
    let tmp = path.with_file_name(tmp_name);
    let file = fs_err::File::create(&tmp).map_err(fail)?;
    let result = (|| {
        let mut tar = tar::Builder::new(GzEncoder::new(file, Compression::default()));
        let root = format!("airlift-support-{}", bundle.release);
        let mtime = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        for (name, data) in &bundle.files {
            let mut header = tar::Header::new_ustar();
            header.set_entry_type(tar::EntryType::Regular);
            header.set_mode(0o644);
            header.set_size(data.len() as u64);
            header.set_mtime(mtime);
            tar.append_data(&mut header, format!("{root}/{name}"), data.as_slice())?;
        }
        let gz = tar.into_inner()?;
        let mut file = gz.finish()?;
        file.flush()?;
        file.sync_all()
    })();
    if let Err(e) = result {
        let _ = fs_err::remove_file(&tmp);
        return Err(fail(e));
    }
    fs_err::rename(&tmp, path).map_err(fail)?;
    Ok(fs_err::metadata(path).map_err(fail)?.len())
}
