
pub mod fakes;
