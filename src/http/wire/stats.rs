//! Resource statistics on the wire: one sample, and the kept history.

use super::*;

#[derive(Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct StatsDto {
    pub total: usize,
    pub by_type: BTreeMap<String, usize>,
    pub by_status: BTreeMap<String, usize>,
    pub default_workspace: Option<WorkspaceDto>,
}

impl StatsDto {
    pub fn new(s: &WorkspaceStats, default_workspace: Option<WorkspaceDto>) -> Self {
        StatsDto {
            total: s.total,
            by_type: s.by_type.clone(),
            by_status: s.by_status.clone(),
            default_workspace,
        }
    }
}

/// Stats of one workspace in the original API's shape (MB, percent), plus
/// network, block I/O, pids and, for one workspace, its recent history.
#[derive(Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ResourceStatsDto {
    pub workspace_id: Uuid,
    pub container_id: String,
    pub cpu: CpuDto,
    pub memory: MemoryDto,
    pub network: NetworkDto,
    #[serde(rename = "blockIO")]
    pub block_io: BlockIoDto,
    pub pids: Option<u64>,
    /// Where the figures were read: the cgroup files or the engine's stats API.
    pub source: crate::domain::SampleSource,
    #[schemars(with = "Timestamp")]
    pub timestamp: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub history: Option<Vec<HistoryDto>>,
}

#[derive(Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CpuDto {
    pub percent: Option<f64>,
    pub usage: u64,
    pub system_usage: Option<u64>,
    pub online_cpus: u32,
}

#[derive(Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct MemoryDto {
    pub percent: Option<f64>,
    pub usage: f64,
    pub limit: Option<f64>,
    pub cache: f64,
}

#[derive(Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct NetIoDto {
    pub rx_bytes: u64,
    pub tx_bytes: u64,
    pub rx_packets: u64,
    pub tx_packets: u64,
}

#[derive(Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct NetworkDto {
    pub interfaces: BTreeMap<String, NetIoDto>,
    pub rx_bytes: u64,
    pub tx_bytes: u64,
    pub rx_packets: u64,
    pub tx_packets: u64,
}

#[derive(Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct BlockIoDto {
    pub read_bytes: u64,
    pub write_bytes: u64,
}

#[derive(Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct HistoryDto {
    #[schemars(with = "Timestamp")]
    pub at: String,
    pub cpu_percent: f64,
    pub memory_usage: f64,
    /// Bytes received and sent since the container started.
    pub rx_bytes: u64,
    pub tx_bytes: u64,
}

impl ResourceStatsDto {
    pub fn new(v: &StatsView, history: Option<&[HistoryPoint]>) -> Self {
        let interfaces: BTreeMap<String, NetIoDto> = v
            .networks
            .iter()
            .map(|(k, n)| {
                (
                    k.clone(),
                    NetIoDto {
                        rx_bytes: n.rx_bytes,
                        tx_bytes: n.tx_bytes,
                        rx_packets: n.rx_packets,
                        tx_packets: n.tx_packets,
                    },
                )
            })
            .collect();
        let sum = |f: fn(&NetIoDto) -> u64| interfaces.values().map(f).sum();
        ResourceStatsDto {
            workspace_id: v.workspace_id,
            container_id: v.container_id.clone(),
            cpu: CpuDto {
                percent: v.cpu_percent,
                usage: v.cpu_usage_ns,
                system_usage: v.system_usage_ns,
                online_cpus: v.online_cpus,
            },
            memory: MemoryDto {
                percent: v.memory_percent,
                usage: v.memory_usage_mb,
                limit: v.memory_limit_mb,
                cache: v.memory_cache_mb,
            },
            network: NetworkDto {
                rx_bytes: sum(|n| n.rx_bytes),
                tx_bytes: sum(|n| n.tx_bytes),
                rx_packets: sum(|n| n.rx_packets),
                tx_packets: sum(|n| n.tx_packets),
                interfaces,
            },
            block_io: BlockIoDto {
                read_bytes: v.blk_read,
                write_bytes: v.blk_write,
            },
            pids: v.pids,
            source: v.source,
            timestamp: rfc3339(v.at),
            history: history.map(|h| {
                h.iter()
                    .map(|p| HistoryDto {
                        at: rfc3339(p.at),
                        cpu_percent: p.cpu_percent,
                        memory_usage: p.memory_mb,
                        rx_bytes: p.rx_bytes,
                        tx_bytes: p.tx_bytes,
                    })
                    .collect()
            }),
        }
    }
}
