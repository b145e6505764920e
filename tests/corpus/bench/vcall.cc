/* Bench: C++ virtual calls over a class hierarchy (g++ -static -O2). argv[1]: rounds (default 100000000). */
// RUN: 10000
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <vector>

struct Shape {
    virtual ~Shape() {}
    virtual double area() const = 0;
    virtual long sides() const = 0;
};
struct Square : Shape {
    double s;
    explicit Square(double s) : s(s) {}
    double area() const override { return s * s; }
    long sides() const override { return 4; }
};
struct Circle : Shape {
    double r;
    explicit Circle(double r) : r(r) {}
    double area() const override { return 3.14159 * r * r; }
    long sides() const override { return 0; }
};
struct Tri : Shape {
    double b, h;
    Tri(double b, double h) : b(b), h(h) {}
    double area() const override { return 0.5 * b * h; }
    long sides() const override { return 3; }
};
struct Hex final : Square {
    explicit Hex(double s) : Square(s) {}
    double area() const override { return 2.598 * s * s; }
    long sides() const override { return 6; }
};

int main(int argc, char **argv) {
    long n = argc > 1 ? atol(argv[1]) : 100000000;
    std::vector<std::unique_ptr<Shape>> v;
    for (int i = 0; i < 61; i++) {
        switch (i % 4) {
        case 0: v.emplace_back(new Square(i * 0.5)); break;
        case 1: v.emplace_back(new Circle(i * 0.25)); break;
        case 2: v.emplace_back(new Tri(i, 2.0)); break;
        default: v.emplace_back(new Hex(i * 0.1)); break;
        }
    }
    double total = 0;
    long sides = 0;
    for (long i = 0; i < n; i++) {
        const Shape &s = *v[i % v.size()];
        total += s.area();
        sides += s.sides();
    }
    std::printf("vcall: %.3f %ld\n", total, sides);
    return 0;
}
