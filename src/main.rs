// mimalloc keeps freed pages for reuse: a 64 KiB response otherwise costs page faults on every
// request with glibc's allocator (measured: ~10% of a large response's validation time).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    std::process::exit(ssogate::cli::main());
}
