fn main() -> anyhow::Result<()> {
    cip::cli::main()
}
