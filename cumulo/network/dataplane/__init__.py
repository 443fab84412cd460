"""The Linux dataplane of the Network API: bridges, taps, DHCP, security groups, routers and the
metadata proxy, all inside network namespaces whose names start with ``[network]
namespace_prefix`` (``cumulo`` by default).  ``names`` says what is called what."""
