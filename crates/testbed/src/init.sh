#!/bin/busybox sh
# /init of the hcontainer arm64 node: mounts, kernel modules, network, the shared folder,
# then the job loop. A job is <n>.sh (with its time limit in <n>.limit) in the shared
# folder's .node/jobs; it runs under setsid with that limit and leaves <n>.out, <n>.err and
# finally <n>.rc (its exit status).
/bin/busybox mkdir -p /proc /sys /dev /tmp /run /bin /sbin /usr/bin /usr/sbin /mnt/host /root
/bin/busybox --install -s
# The initramfs root is world-writable (1777); a root file system is 0755, and CRIU checks
# the mode of a restored process's root and working directories against its dump.
chmod 755 /
export PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev 2>/dev/null
mkdir -p /dev/pts /dev/shm
mount -t devpts devpts /dev/pts
mount -t tmpfs tmpfs /dev/shm
mount -t tmpfs tmpfs /tmp
mount -t tmpfs tmpfs /run
while read m; do
  insmod "/lib/modules/$m" || echo "node: insmod $m failed"
done < /etc/modules
hostname arm64-node
ip link set lo up
ip link set eth0 up
ip addr add 10.0.2.15/24 dev eth0
ip route add default via 10.0.2.2
if ! mount -t 9p -o trans=virtio,version=9p2000.L,msize=262144 host0 /mnt/host; then
  echo "node: cannot mount the shared folder"
  poweroff -f
fi
N=/mnt/host/.node
uname -r > $N/ready.tmp && mv $N/ready.tmp $N/ready
echo "node: ready"
while :; do
  for f in $N/jobs/*.sh; do
    [ -e "$f" ] || continue
    n=${f%.sh}
    mv "$f" "$n.run" 2>/dev/null || continue
    (
      cd /root
      setsid timeout -s KILL "$(cat "$n.limit")" sh "$n.run" </dev/null >"$n.out" 2>"$n.err"
      echo $? > "$n.rc.tmp"
      mv "$n.rc.tmp" "$n.rc"
    ) &
  done
  sleep 0.1
done
