//! A loopback TCP load balancer, as in front of a real cluster: each new connection goes to the next
//! backend, round robin, skipping the ones that refuse it (a node that stopped listening), and its
//! bytes are copied both ways until either side closes. A client whose node goes away sees its
//! connection end and reconnects through it to another node.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::net::{TcpListener, TcpStream};
use tokio::task::{JoinHandle, JoinSet};

/// A balancer on a port of its own; stops (its connections with it) when dropped.
pub struct Balancer {
    pub url: String,
    task: JoinHandle<()>,
}

impl Drop for Balancer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Balancer {
    /// Starts balancing over `backends`, given as the nodes' `http://host:port` URLs.
    pub async fn start(backends: &[&str]) -> Self {
        let backends: Vec<SocketAddr> = backends
            .iter()
            .map(|url| {
                url.trim_start_matches("http://")
                    .parse()
                    .unwrap_or_else(|_| panic!("{url} is http://ip:port"))
            })
            .collect();
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("a loopback port");
        let url = format!("http://{}", listener.local_addr().expect("its address"));
        let task = tokio::spawn(async move {
            let next = AtomicUsize::new(0);
            // Owned here: aborting the balancer ends every forwarded connection too.
            let mut connections = JoinSet::new();
            while let Ok((client, _)) = listener.accept().await {
                while connections.try_join_next().is_some() {}
                if let Some(backend) = connect_next(&backends, &next).await {
                    connections.spawn(forward(client, backend));
                }
            }
        });
        Self { url, task }
    }
}

/// The next backend, round robin, that accepts a connection; `None` when none does.
async fn connect_next(backends: &[SocketAddr], next: &AtomicUsize) -> Option<TcpStream> {
    for _ in 0..backends.len() {
        let backend = backends[next.fetch_add(1, Ordering::Relaxed) % backends.len()];
        if let Ok(stream) = TcpStream::connect(backend).await {
            return Some(stream);
        }
    }
    None
}

async fn forward(mut client: TcpStream, mut backend: TcpStream) {
    let _ = tokio::io::copy_bidirectional(&mut client, &mut backend).await;
}
