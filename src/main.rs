fn main() {
    print!("{}", offer_cancel_operator::crd::crd_yaml().unwrap());
}
