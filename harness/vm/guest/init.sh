#!/bin/busybox sh
# /init of the switchover test guest: a busybox initramfs on Debian's cloud kernel, built
# by harness/vm/guest/recipe.ts. It loads the virtio modules, configures the NIC from the
# kernel command line, starts /bin/guest-udp (harness/vm/guest/guest-udp.c: UDP echo on 7, sink
# on 9, the guest's stream on a command over ttyS1, the dirtier) and prints the ready marker.
# ICMP echo the kernel answers. (Debian's busybox-static 1.35 has no UDP nc nor udpsvd: hence
# a helper of our own.)
#
# Kernel command line (all optional except ip):
#   switchover.ip=192.168.100.2/24  switchover.mac=52:54:00:12:34:56
#   switchover.gw=192.168.100.1     switchover.role=src
#   switchover.dirty-rate=20000     pages/s the guest dirties (default 0)
/bin/busybox mkdir -p /proc /sys /dev /tmp
/bin/busybox mount -t proc proc /proc
/bin/busybox mount -t sysfs sysfs /sys
/bin/busybox mount -t devtmpfs devtmpfs /dev
/bin/busybox --install -s /bin
export PATH=/bin

say() { echo "switchover-guest: $*" > /dev/ttyS0; }

# Modules in dependency order, one path per line (the recipe writes the list).
while read -r ko; do
  insmod "$ko" || say "insmod $ko failed"
done < /etc/modules

ip= mac= gw= role= dirty=0
for arg in $(cat /proc/cmdline); do
  case "$arg" in
    switchover.ip=*) ip="${arg#switchover.ip=}" ;;
    switchover.mac=*) mac="${arg#switchover.mac=}" ;;
    switchover.gw=*) gw="${arg#switchover.gw=}" ;;
    switchover.role=*) role="${arg#switchover.role=}" ;;
    switchover.dirty-rate=*) dirty="${arg#switchover.dirty-rate=}" ;;
  esac
done

# The NIC is the one whose address QEMU was given (-device ...,mac=), else eth0.
dev=eth0
if [ -n "$mac" ]; then
  for d in /sys/class/net/*; do
    [ "$(cat "$d/address")" = "$mac" ] && dev="${d##*/}"
  done
fi

ip link set lo up
ip link set "$dev" up
if [ -n "$ip" ]; then
  ip addr add "$ip" dev "$dev"
  [ -n "$gw" ] && ip route add default via "$gw"
  # Tell the segment where the guest is, as a booted OS would (gratuitous ARP).
  arping -q -U -c 1 -I "$dev" "${ip%/*}" &
fi

# Room for guest-udp's 4 MiB socket buffers: the burst a resumed VM reads from its TAP
# queues at the echo's socket instead of being dropped there.
echo 4194304 > /proc/sys/net/core/rmem_max
echo 4194304 > /proc/sys/net/core/wmem_max
# With an address, the echo runs as XDP on the NIC (see guest-udp.c).
xdp=
[ -n "$ip" ] && xdp="--iface $dev --ip ${ip%/*}"
# shellcheck disable=SC2086 # $xdp is two options or none
/bin/guest-udp --dirty-rate "$dirty" --control /dev/ttyS1 $xdp || say "guest-udp failed to start"

say "dev=$dev ip=$ip mac=$(cat "/sys/class/net/$dev/address") role=$role"
echo "SWITCHOVER-GUEST-READY" > /dev/ttyS0

# /init must never exit (the kernel panics); guest-udp's jobs run on.
while :; do sleep 3600; done
