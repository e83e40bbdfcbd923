//! Namespace `net`: DNS look-ups.

use kubewarden_policy_sdk::host_capabilities::net::LookupResponse;

use super::{Call, CapabilityError, answer, parse, unknown_operation};

const DNS_LOOKUP_HOST: &str = "kubewarden/net/v1/dns_lookup_host";

pub(super) fn dispatch(call: &Call<'_>, operation: &str, payload: &[u8]) -> Result<Vec<u8>, CapabilityError> {
    match operation {
        "v1/dns_lookup_host" => {
            let host: String = parse(DNS_LOOKUP_HOST, payload)?;
            let ips = call.run(DNS_LOOKUP_HOST, async move {
                let addrs = tokio::net::lookup_host((host.as_str(), 0))
                    .await
                    .map_err(|e| CapabilityError::Failed {
                        call: DNS_LOOKUP_HOST,
                        message: format!("cannot resolve {host}: {e}"),
                    })?;
                let mut ips: Vec<String> = Vec::new();
                for addr in addrs {
                    let ip = addr.ip().to_string();
                    if !ips.contains(&ip) {
                        ips.push(ip);
                    }
                }
                Ok(ips)
            })?;
            answer(DNS_LOOKUP_HOST, &LookupResponse { ips })
        }
        other => Err(unknown_operation(other)),
    }
}
