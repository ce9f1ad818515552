fn main() {
    println!("alarm-tray {}", alarm_tray::VERSION);
}
