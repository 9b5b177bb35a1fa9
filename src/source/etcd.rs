//! The overlay tree from etcd (the original clusterf key layout).
