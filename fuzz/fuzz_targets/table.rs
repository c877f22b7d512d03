// Shared by the stdin and argv targets: every option row of every feature group.
fn fencekit_fuzz_table() -> Vec<fencekit::OptSpec> {
    use fencekit::protocol::agent::{AgentInfo, Feature};
    static INFO: AgentInfo = AgentInfo {
        name: "fence_fuzz",
        shortdesc: "",
        longdesc: "",
        vendor_url: "",
        features: &[
            Feature::Address,
            Feature::Login,
            Feature::Password,
            Feature::Ssh,
            Feature::Plugs,
            Feature::Sudo,
            Feature::Method,
            Feature::MissingAsOff,
        ],
        options: &[],
        defaults: &[],
        has_list: true,
        has_cycle: true,
        has_diag: true,
        needs_password: true,
    };
    fencekit::protocol::options::table(&INFO)
}
