fn main() {
    std::process::exit(ssogate::cli::main());
}
