//! Start here: endpoints come and go, and every lease becomes an agent task
//! that holds it while "connected". (`agent_pool` is the bigger live show.)
//!
//! ```sh
//! cargo run -p workpool-std --example endpoints
//! ```

use std::time::Duration;

use futures_lite::StreamExt;
use tokio::{task::JoinSet, time::sleep};
use workpool_std::{Counts, Pool};

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let pool: Pool<String> = Pool::new();
    pool.set("proxy-a".to_owned(), 2); // keep two agents on proxy-a
    pool.set("proxy-b".to_owned(), 1); // and one on proxy-b

    // One agent per lease, from whichever endpoint has room, until the pool
    // closes. An agent that hangs up drops its lease, and a new one starts.
    let mut leases = pool.leases();
    let dispatcher = tokio::spawn(async move {
        let mut agents = JoinSet::new();
        while let Some(lease) = leases.next().await {
            agents.spawn(async move {
                sleep(Duration::from_millis(10)).await; // connected...
                lease.key().clone() // ...hang up: the lease is dropped here
            });
        }
        agents.join_all().await // the endpoint of every agent that ran
    });

    sleep(Duration::from_millis(50)).await;
    pool.set("proxy-c".to_owned(), 1); // an endpoint appears

    // One goes away: target 0, and whoever waits for proxy-b itself fails
    // with `Closed` (after a mere `set(.., 0)` it would wait for its return).
    pool.close_key("proxy-b");
    sleep(Duration::from_millis(50)).await;
    pool.close(); // no new leases: the stream ends, the agents finish

    let ran = dispatcher.await.expect("the dispatcher does not panic");
    for key in ["proxy-a", "proxy-b", "proxy-c"] {
        let agents = ran.iter().filter(|k| *k == key).count();
        println!("{key}: {agents} agents");
        assert!(agents > 0);
        assert_eq!(pool.counts(key).active, 0, "every lease came back");
    }
    assert_eq!(pool.counts("proxy-b"), Counts::default(), "forgotten");
}
