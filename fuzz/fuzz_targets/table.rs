// Shared by the stdin and argv targets: every option row of every feature group.
fn fencekit_fuzz_table() -> Vec<fencekit::OptSpec> {
    use fencekit::protocol::agent::{AgentInfo, Feature};
    static INFO: AgentInfo = AgentInfo::new("fence_fuzz", "")
        .features(&[
            Feature::Address,
            Feature::Login,
            Feature::Password,
            Feature::Ssh,
            Feature::Plugs,
            Feature::Sudo,
            Feature::Method,
            Feature::MissingAsOff,
        ])
        .needs_password();
    fencekit::protocol::options::table(&INFO).unwrap_or_default()
}
