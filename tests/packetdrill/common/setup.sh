#!/bin/bash
# Kernel settings for the project's own packetdrill scripts (tests/packetdrill/scripts):
# the values a stock Linux 6.18 uses, except where a script needs them fixed.
sysctl -q net.ipv4.tcp_rmem="4096 131072 6291456"
sysctl -q net.ipv4.tcp_wmem="4096 16384 4194304"
sysctl -q net.ipv4.tcp_sack=1
sysctl -q net.ipv4.tcp_dsack=1
sysctl -q net.ipv4.tcp_congestion_control=cubic
sysctl -q net.ipv4.tcp_slow_start_after_idle=0
sysctl -q net.ipv4.tcp_syncookies=1
# the tun device's default qdisc could pace; keep it a plain FIFO
tc qdisc add dev tun0 root pfifo
